"""Spectral metadata kept through every path, IMAGERY-domain items, and ENVI output."""

import os

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from hsi_gdal import CancelledError, InputError
from hsi_gdal.tools.cli import main
from hsi_gdal.spectral import imagery_items
from tests.conftest import SAMPLE

KEYS = ("wavelength", "wavelength_units", "fwhm", "bbl")


def _bands(path, domain=""):
    """(description, metadata, nodata, scale, offset) per band, read with plain osgeo."""
    ds = gdal.Open(path)
    out = []
    for i in range(ds.RasterCount):
        b = ds.GetRasterBand(i + 1)
        out.append((b.GetDescription(), b.GetMetadata(domain) or {}, b.GetNoDataValue(), b.GetScale(),
                    b.GetOffset()))
        del b
    del ds
    return out


def test_imagery_items_convert_units():
    assert imagery_items({"wavelength": "450.5", "wavelength_units": "Nanometers", "fwhm": "7.5"}) == \
        {"CENTRAL_WAVELENGTH_UM": "0.4505", "FWHM_UM": "0.0075"}
    assert imagery_items({"wavelength": "1.2", "wavelength_units": "Micrometers"}) == \
        {"CENTRAL_WAVELENGTH_UM": "1.2"}
    assert imagery_items({"wavelength": "1.2"}) == {}           # unknown units: nothing invented
    assert imagery_items({"wavelength": "x", "wavelength_units": "nm"}) == {}


@pytest.mark.parametrize("out_name", ["d.tif", "d.img", "d.bsq", "d.dat"])
def test_metadata_kept_compress_sidecar_open_decompress(make_raster, tmp_path, out_name):
    src = make_raster(bands=6, rows=40, cols=30)
    hsic = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(hsic, src)
    ref = _bands(src)
    expected_imagery = [imagery_items(md) for _, md, *_ in ref]
    assert expected_imagery[1] == {"CENTRAL_WAVELENGTH_UM": "0.41", "FWHM_UM": "0.0075"}

    # The .hsic through hsi_gdal, the sidecar through plain GDAL, and the decoded raster.
    ds = hsi_gdal.Open(hsic)
    for i, (desc, md, nodata, scale, offset) in enumerate(ref):
        b = ds.GetRasterBand(i + 1)
        assert (b.GetDescription(), b.GetMetadata(), b.GetNoDataValue(), b.GetScale(), b.GetOffset()) == \
               (desc, md, nodata, scale, offset)
        assert b.GetMetadata("IMAGERY") == expected_imagery[i]
    # The sidecar also declares the source statistics computed at compress time (as GDAL's PAM would).
    sidecar = [(d, {k: v for k, v in md.items() if not k.startswith("STATISTICS_")}, *rest)
               for d, md, *rest in _bands(hsic + ".vrt")]
    assert sidecar == ref
    assert [md for _, md, *_ in _bands(hsic + ".vrt", "IMAGERY")] == expected_imagery

    out = str(tmp_path / out_name)
    hsi_gdal.Translate(out, hsic)
    got = _bands(out)
    for (desc, md, nodata, scale, offset), (gdesc, gmd, gnodata, gscale, goffset) in zip(ref, got):
        assert gdesc == desc and (gnodata, gscale, goffset) == (nodata, scale, offset)
        assert {k: gmd.get(k) for k in KEYS} == {k: md[k] for k in KEYS}
    assert [md for _, md, *_ in _bands(out, "IMAGERY")] == expected_imagery
    np.testing.assert_array_equal(gdal.Open(out).ReadAsArray(), ds.ReadAsArray())


def test_envi_header_has_wavelength_fwhm_units_bbl(make_raster, tmp_path):
    hsic = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(hsic, make_raster(bands=4, rows=20, cols=10))
    hsi_gdal.Translate(str(tmp_path / "d.img"), hsic)
    hdr = (tmp_path / "d.hdr").read_text()
    assert "wavelength = {400, 410, 420, 430}" in hdr
    assert "fwhm = {7.5, 7.5, 7.5, 7.5}" in hdr
    assert "wavelength units = Nanometers" in hdr
    assert "bbl = {1, 1, 1, 1}" in hdr
    assert "interleave = bsq" in hdr and "data ignore value = -32768" in hdr
    # Without GDAL's .aux.xml, the .hdr alone still gives every band its spectral metadata.
    os.remove(tmp_path / "d.img.aux.xml")
    b = hsi_gdal.Open(str(tmp_path / "d.img")).GetRasterBand(3)
    assert {k: b.GetMetadata()[k] for k in KEYS} == \
        {"wavelength": "420", "wavelength_units": "Nanometers", "fwhm": "7.5", "bbl": "1"}


def test_envi_source_compresses_with_its_fwhm_and_bbl(make_raster, tmp_path):
    hsic = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(hsic, make_raster(bands=4, rows=20, cols=10))
    hsi_gdal.Translate(str(tmp_path / "d.img"), hsic)
    os.remove(tmp_path / "d.img.aux.xml")  # what a plain ENVI file from another tool looks like
    again = hsi_gdal.Translate(str(tmp_path / "e.hsic"), str(tmp_path / "d.img"))
    assert again.GetRasterBand(2).GetMetadata()["fwhm"] == "7.5"
    assert again.GetRasterBand(2).GetMetadata()["bbl"] == "1"
    assert again.GetRasterBand(2).GetMetadata("IMAGERY") == {"CENTRAL_WAVELENGTH_UM": "0.41", "FWHM_UM": "0.0075"}


def test_source_with_only_imagery_domain(make_raster, tmp_path):
    path = make_raster(bands=4, rows=20, cols=10)
    ds = gdal.Open(path, gdal.GA_Update)
    for i in range(4):
        b = ds.GetRasterBand(i + 1)
        b.SetMetadata({})
        b.SetMetadata({"CENTRAL_WAVELENGTH_UM": f"{0.5 + i / 10:g}", "FWHM_UM": "0.01"}, "IMAGERY")
        del b
    del ds
    out = hsi_gdal.Translate(str(tmp_path / "c.hsic"), path)
    md = out.GetRasterBand(2).GetMetadata()
    assert md == {"wavelength": "0.6", "wavelength_units": "Micrometers", "fwhm": "0.01"}
    assert out.GetRasterBand(2).GetMetadata("IMAGERY") == {"CENTRAL_WAVELENGTH_UM": "0.6", "FWHM_UM": "0.01"}


def test_envi_cancel_and_errors_leave_nothing(make_raster, tmp_path):
    hsic = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(hsic, make_raster(bands=4, rows=300, cols=20))
    before = set(os.listdir(tmp_path))
    with pytest.raises(CancelledError):
        hsi_gdal.Translate(str(tmp_path / "d.img"), hsic, progress=lambda f: False)
    with pytest.raises(InputError, match="codec, quality"):
        hsi_gdal.Translate(str(tmp_path / "d.img"), hsic, codec="cae1d")
    assert set(os.listdir(tmp_path)) == before   # no data file, header, aux.xml or temp folder


def test_cli_decompress_to_envi_real_scene(tmp_path, capsys):
    hsic = str(tmp_path / "s.hsic")
    assert main(["compress", str(SAMPLE), hsic, "-q", "--device", "cpu"]) == 0
    assert main(["decompress", hsic, str(tmp_path / "s.bsq"), "-q", "--device", "cpu"]) == 0
    capsys.readouterr()
    ref, got = _bands(str(SAMPLE)), _bands(str(tmp_path / "s.bsq"))
    assert len(got) == 224
    for (desc, md, nodata, scale, offset), (gdesc, gmd, gnodata, gscale, goffset) in zip(ref, got):
        assert gdesc == desc and (gnodata, gscale, goffset) == (nodata, scale, offset)
        assert {k: gmd.get(k) for k in KEYS} == {k: md.get(k) for k in KEYS}
    hdr = (tmp_path / "s.hdr").read_text()
    assert "wavelength units = Nanometers" in hdr and "fwhm = {" in hdr and "bbl = {" in hdr
    imagery = _bands(str(tmp_path / "s.hsic.vrt"), "IMAGERY")[0][1]
    assert float(imagery["CENTRAL_WAVELENGTH_UM"]) == pytest.approx(float(ref[0][1]["wavelength"]) / 1000)
