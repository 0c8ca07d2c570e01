"""hsic:decompress writes ENVI (wavelength, fwhm, bbl in the .hdr) as well as GeoTIFF."""

import pytest
from osgeo import gdal
from qgis.core import QgsProcessingException

import hsi_gdal
from tests.qgis_plugin.test_provider import registry, run  # noqa: F401  (fixture)

pytestmark = pytest.mark.qgis


def test_decompress_to_envi_and_filter_offers_it(registry, make_raster, tmp_path):  # noqa: F811
    alg = registry.algorithmById("hsic:decompress")
    out_param = {p.name(): p for p in alg.parameterDefinitions()}["OUTPUT"]
    assert "*.img" in out_param.createFileFilter() and "*.bsq" in out_param.createFileFilter()

    hsic = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(hsic, make_raster(bands=5, rows=30, cols=20))
    result = run("hsic:decompress", {"INPUT": hsic, "OUTPUT": str(tmp_path / "d.img")})
    assert result["OUTPUT"] == str(tmp_path / "d.img")
    hdr = (tmp_path / "d.hdr").read_text()
    assert "wavelength = {400, 410, 420, 430, 440}" in hdr and "fwhm = {" in hdr and "bbl = {" in hdr
    ds = gdal.Open(result["OUTPUT"])
    assert (ds.RasterCount, ds.RasterYSize, ds.RasterXSize) == (5, 30, 20)
    assert ds.GetRasterBand(2).GetMetadataItem("wavelength") == "410"
    ds = None

    with pytest.raises(QgsProcessingException, match="OUTPUT must be"):
        run("hsic:decompress", {"INPUT": hsic, "OUTPUT": str(tmp_path / "d.png")})
