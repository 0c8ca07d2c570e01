"""hsic:open: a .hsic becomes a georeferenced layer through its sidecar, written when missing."""

import os
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from conftest import run_alg
from osgeo import gdal
from qgis.core import Qgis, QgsProcessingContext, QgsProcessingException, QgsProject, QgsRasterLayer

pytestmark = pytest.mark.qgis


@pytest.fixture
def hsic(hsic_registry, make_raster, tmp_path):
    import hsi_gdal

    src = make_raster("s.tif", bands=6, rows=50, cols=40)
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), src, device="cpu")
    return str(tmp_path / "c.hsic")


def test_open_writes_a_missing_sidecar_trusts_the_decoder_and_loads_a_layer(hsic):
    import hsi_gdal

    os.remove(hsic + ".vrt")
    gdal.SetConfigOption("GDAL_VRT_PYTHON_TRUSTED_MODULES", None)  # as in a fresh QGIS
    context = QgsProcessingContext()
    context.setProject(QgsProject.instance())
    out = run_alg("hsic:open", {"INPUT": hsic, "NAME": "my scene"}, context=context)
    assert out == {"OUTPUT": hsic + ".vrt"} and os.path.isfile(hsic + ".vrt")
    assert "hsi_gdal.pixelfn" in gdal.GetConfigOption("GDAL_VRT_PYTHON_TRUSTED_MODULES")
    (layer_id, details), = context.layersToLoadOnCompletion().items()
    assert details.name == "my scene"
    loaded = context.getMapLayer(layer_id)
    assert loaded.source() == hsic + ".vrt"
    # Drawn with the sidecar's default style (no statistics computed on the GUI thread, the sidecar untouched)
    styled = ET.parse(hsic + ".qml").getroot().find(".//rasterrenderer")
    renderer = loaded.renderer()
    assert [renderer.redBand(), renderer.greenBand(), renderer.blueBand()] == [
        int(styled.get(f"{c}Band")) for c in ("red", "green", "blue")]
    assert renderer.redContrastEnhancement().minimumValue() == pytest.approx(
        float(styled.find("redContrastEnhancement/minValue").text))

    layer = QgsRasterLayer(out["OUTPUT"], "c", "gdal")
    try:
        assert layer.isValid() and layer.crs().authid() == "EPSG:32633" and layer.bandCount() == 6
        block = layer.dataProvider().block(3, layer.extent(), 40, 50)
        assert block.dataType() == Qgis.Float32  # QGIS applies the band scale (1e-4) kept in the sidecar
        pixels = np.frombuffer(bytes(block.data()), dtype=np.float32).reshape(50, 40)
        np.testing.assert_allclose(pixels, hsi_gdal.Open(hsic).ReadAsArray()[2] * 1e-4, rtol=1e-6)
    finally:
        del layer


def test_open_keeps_an_existing_sidecar_and_names_the_layer_after_the_file(hsic):
    before = os.stat(hsic + ".vrt").st_mtime_ns
    context = QgsProcessingContext()
    run_alg("hsic:open", {"INPUT": hsic}, context=context)
    assert os.stat(hsic + ".vrt").st_mtime_ns == before
    (layer_id, details), = context.layersToLoadOnCompletion().items()
    assert details.name == "c.hsic" and context.getMapLayer(layer_id).source() == hsic + ".vrt"


def test_open_refuses_what_it_cannot_open(hsic, make_raster, tmp_path):
    with pytest.raises(QgsProcessingException, match=r"INPUT must be a \.hsic file"):
        run_alg("hsic:open", {"INPUT": make_raster("x.tif")})
    with pytest.raises(QgsProcessingException):
        run_alg("hsic:open", {"INPUT": str(tmp_path / "missing.hsic")})
    bad = tmp_path / "bad.hsic"
    bad.write_bytes(b"not a hsic file at all")
    with pytest.raises(QgsProcessingException, match="bad.hsic"):
        run_alg("hsic:open", {"INPUT": str(bad)})
    assert not (tmp_path / "bad.hsic.vrt").exists()
