"""hsi_gdal: Open, Translate both ways, metadata kept, sidecar in osgeo and rasterio, errors."""

import os

import numpy as np
import pytest

import hsi_gdal
from hsi_gdal import CancelledError, HSICError, HSICIOError, InputError


def test_open_gdal_raster_like_osgeo(make_raster):
    path = make_raster(bands=5, rows=20, cols=10)
    ds = hsi_gdal.Open(path)
    assert (ds.RasterCount, ds.RasterYSize, ds.RasterXSize) == (5, 20, 10)
    band = ds.GetRasterBand(2)
    assert band.GetDescription() == "band 2 (410 Nanometers)"
    assert band.GetMetadata()["wavelength"] == "410"
    assert band.GetNoDataValue() == -32768 and band.GetScale() == 1e-4 and band.GetOffset() == 0.0
    assert ds.ReadAsArray(2, 3, 4, 5).shape == (5, 5, 4)
    np.testing.assert_array_equal(band.ReadAsArray(2, 3, 4, 5), ds.ReadAsArray(2, 3, 4, 5)[1])
    with pytest.raises(InputError):
        ds.GetRasterBand(6)
    with pytest.raises(InputError, match="outside"):
        ds.ReadAsArray(8, 0, 5, 5)


def test_compress_keeps_everything_and_sidecar_matches_decoder(make_raster, tmp_path):
    from osgeo import gdal

    src_path = make_raster(bands=16, rows=150, cols=140)   # 2 x 2 tiles of 128
    dst = str(tmp_path / "c.hsic")
    out = hsi_gdal.Translate(dst, src_path)
    src = hsi_gdal.Open(src_path)
    assert os.path.exists(dst + ".vrt")
    assert out.GetGeoTransform() == src.GetGeoTransform()
    assert out.GetProjection() == src.GetProjection()
    assert out.GetMetadata() == src.GetMetadata()
    for i in (1, 16):
        a, b = src.GetRasterBand(i), out.GetRasterBand(i)
        assert (a.GetDescription(), a.GetMetadata(), a.GetNoDataValue(), a.GetScale(), a.GetOffset()) == \
               (b.GetDescription(), b.GetMetadata(), b.GetNoDataValue(), b.GetScale(), b.GetOffset())
    decoded = out.ReadAsArray()
    assert decoded.dtype == np.int16 and decoded.shape == (16, 150, 140)

    g = gdal.Open(dst + ".vrt")
    assert g.RasterCount == 16 and g.GetGeoTransform() == src.GetGeoTransform()
    b5 = g.GetRasterBand(5)
    assert b5.GetMetadataItem("wavelength") == "440" and b5.GetNoDataValue() == -32768
    assert b5.GetScale() == 1e-4 and b5.GetDescription() == "band 5 (440 Nanometers)"
    np.testing.assert_array_equal(g.ReadAsArray(), decoded)
    np.testing.assert_array_equal(b5.ReadAsArray(100, 120, 40, 30), decoded[4, 120:150, 100:140])
    del b5, g


def test_sidecar_decodes_each_tile_once_for_all_bands(make_raster, tmp_path):
    from osgeo import gdal

    from hsi_gdal import pixelfn

    dst = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(dst, make_raster(bands=24, rows=150, cols=140))
    g = gdal.Open(dst + ".vrt")
    g.ReadAsArray()
    dec = pixelfn.decoder_for(dst)
    assert dec.decoded_tiles == 4      # 4 tiles, 24 bands: decoded once each, not 96 times
    del g


def test_rasterio_opens_sidecar(make_raster, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    dst = str(tmp_path / "c.hsic")
    out = hsi_gdal.Translate(dst, make_raster(bands=6, rows=30, cols=20))
    with rasterio.open(dst + ".vrt") as r:
        assert r.count == 6 and r.crs.to_epsg() == 32633
        np.testing.assert_array_equal(r.read(), out.ReadAsArray())


def test_decompress_to_geotiff_round_trip(make_raster, tmp_path):
    from osgeo import gdal

    src_path = make_raster(bands=8, rows=40, cols=30)
    hsic = str(tmp_path / "c.hsic")
    tif = str(tmp_path / "d.tif")
    out = hsi_gdal.Translate(hsic, src_path)
    hsi_gdal.Translate(tif, hsic)
    g = gdal.Open(tif)
    np.testing.assert_array_equal(g.ReadAsArray(), out.ReadAsArray())
    b = g.GetRasterBand(3)
    assert b.GetMetadataItem("wavelength") == "420" and b.GetNoDataValue() == -32768
    assert g.GetMetadataItem("SENSOR") == "test"
    del b, g


def test_cancelled_compress_and_decompress_leave_nothing(make_raster, tmp_path):
    src_path = make_raster(bands=4, rows=300, cols=200)
    with pytest.raises(CancelledError):
        hsi_gdal.Translate(str(tmp_path / "c.hsic"), src_path, progress=lambda f: False)
    assert sorted(os.listdir(tmp_path)) == ["cube.tif"]
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), src_path)
    with pytest.raises(CancelledError):
        hsi_gdal.Translate(str(tmp_path / "d.tif"), str(tmp_path / "c.hsic"), progress=lambda f: False)
    assert not any(n.startswith("d.tif") for n in os.listdir(tmp_path))


@pytest.mark.parametrize("dtype", ["uint16", "float32", "uint8"])
def test_other_source_types(make_raster, tmp_path, dtype):
    rng = np.random.default_rng(1)
    data = (rng.uniform(0.2, 0.8, (10, 1, 1)) * rng.uniform(50, 200, (1, 12, 9))).astype(dtype)
    src = make_raster(data=data, nodata=None)
    out = hsi_gdal.Translate(str(tmp_path / "c.hsic"), src)
    assert out.ReadAsArray().dtype == np.dtype(dtype) and out.GetRasterBand(1).GetNoDataValue() is None


def test_user_errors(make_raster, tmp_path):
    src = make_raster()
    with pytest.raises(HSICIOError):
        hsi_gdal.Translate(str(tmp_path / "x.hsic"), str(tmp_path / "missing.tif"))
    text = tmp_path / "notes.txt"
    text.write_text("not a raster")
    with pytest.raises(InputError, match="not a raster"):
        hsi_gdal.Translate(str(tmp_path / "x.hsic"), str(text))
    with pytest.raises(InputError, match="unknown output type"):
        hsi_gdal.Translate(str(tmp_path / "x.png"), src)
    with pytest.raises(HSICError, match="unknown codec"):
        hsi_gdal.Translate(str(tmp_path / "x.hsic"), src, codec="nope")
    with pytest.raises(HSICError, match="quality"):
        hsi_gdal.Translate(str(tmp_path / "x.hsic"), src, quality=42)
    with pytest.raises(HSICIOError, match="does not exist"):
        hsi_gdal.Translate(str(tmp_path / "no" / "x.hsic"), src)
    assert not any(p.name.startswith("x.") for p in tmp_path.iterdir())


def test_import_trusts_only_the_decoder_module():
    from osgeo import gdal

    assert "hsi_gdal.pixelfn" in gdal.GetConfigOption("GDAL_VRT_PYTHON_TRUSTED_MODULES").split(",")
    assert gdal.GetConfigOption("GDAL_VRT_ENABLE_PYTHON") in (None, "TRUSTED_MODULES")


@pytest.mark.parametrize("bands,dtype", [(1, "int16"), (3, "uint8")])
def test_rasters_that_are_not_spectral_cubes_are_refused(make_raster, tmp_path, bands, dtype):
    """A grey or RGB raster would come out larger than its source: one line says why and what to use."""
    src = make_raster(bands=bands, rows=20, cols=20, dtype=dtype, nodata=None)
    dst = str(tmp_path / "x.hsic")
    with pytest.raises(hsi_gdal.InputError, match="not a spectral cube.*gdal_translate -co COMPRESS=DEFLATE") as e:
        hsi_gdal.Translate(dst, src)
    assert "\n" not in str(e.value)
    assert not os.path.exists(dst) and not os.path.exists(dst + ".vrt")


def test_compress_streams_under_the_gdal_cache_limit(make_raster, tmp_path, monkeypatch):
    """Every read of the source while compressing (the sidecar's statistics pass included) runs with GDAL's
    block cache capped: uncapped, the statistics pass filled the default cache (5 % of RAM) and a 4000 x
    4000 x 224 compress peaked at 1.6 GB instead of the streaming bound."""
    from hsi_gdal.gdal_env import STREAM_CACHE_BYTES, gdal
    from hsi_gdal.source import RasterSource

    seen = []
    read = RasterSource.read_window

    def spy(self, *window):
        seen.append(gdal.GetCacheMax())
        return read(self, *window)

    monkeypatch.setattr(RasterSource, "read_window", spy)
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), make_raster(bands=4, rows=20, cols=20))
    assert seen and max(seen) <= STREAM_CACHE_BYTES
