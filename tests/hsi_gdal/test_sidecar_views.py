"""The sidecar on a large scene: window reads decode only the tiles they touch; overviews decode no
full-resolution tile; a moved .hsic + sidecar pair still opens."""

import os
import shutil

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from engine.format.container import open_hsic
from engine.overviews import block_mean, default_factors, read_levels
from engine.tiling import TileGrid
from hsi_gdal import pixelfn
from tests import fast_codec

ROWS = COLS = 3000
BANDS = 3


@pytest.fixture(scope="module")
def big(tmp_path_factory):
    """A 3000 x 3000 x 3 int16 scene compressed (lossless stand-in codec) once for the module."""
    registered = fast_codec.install()
    folder = tmp_path_factory.mktemp("big")
    y, x = np.ogrid[:ROWS, :COLS]
    data = np.stack([((y // 3 + x // 5 + 7 * b) % 2000 + 100) for b in range(BANDS)]).astype(np.int16)
    data[:, :40, :40] = -32768  # a no-data corner
    src = str(folder / "big.tif")
    ds = gdal.GetDriverByName("GTiff").Create(src, COLS, ROWS, BANDS, gdal.GDT_Int16, ["TILED=YES"])
    ds.SetGeoTransform((365055.0, 30.0, 0.0, 5807085.0, 0.0, -30.0))
    for b in range(BANDS):
        band = ds.GetRasterBand(b + 1)
        band.WriteArray(data[b])
        band.SetNoDataValue(-32768)
        del band
    ds = None
    dst = str(folder / "big.hsic")
    hsi_gdal.Translate(dst, src, codec=fast_codec.CODEC_ID)
    yield dst, data
    if registered:
        fast_codec.uninstall()


def test_default_overview_factors():
    assert default_factors(3000, 3000) == (4, 16)
    assert default_factors(1024, 200) == (4, 16) and default_factors(1000, 200) == (4,)
    assert default_factors(252, 100) == ()       # small scenes get none
    assert default_factors(64, 96) == ()


def test_window_read_decodes_only_touched_tiles(big):
    dst, data = big
    g = gdal.Open(dst + ".vrt")
    dec = pixelfn.decoder_for(dst)
    before = dec.decoded_tiles
    win = g.ReadAsArray(1000, 1000, 1024, 1024)
    touched = TileGrid(ROWS, COLS, 128, 128).tiles_touching(1000, 1000, 1024, 1024)
    assert len(touched) == 81                     # 9 x 9 of the 24 x 24 = 576 tiles
    assert dec.decoded_tiles - before == 81       # each once for all 3 bands, nothing else
    np.testing.assert_array_equal(win, data[:, 1000:2024, 1000:2024])
    del g


@pytest.mark.qgis
def test_qgis_block_render_decodes_only_touched_tiles(big, qgis_app):
    from qgis.core import QgsRasterLayer, QgsRectangle

    dst, data = big
    layer = QgsRasterLayer(dst + ".vrt", "big")
    assert layer.isValid()
    dec = pixelfn.decoder_for(dst)
    before = dec.decoded_tiles
    # Pixels [200, 1224) x [300, 1324): map x = 365055 + 30 * col, map y = 5807085 - 30 * row.
    extent = QgsRectangle(365055.0 + 30 * 200, 5807085.0 - 30 * 1324, 365055.0 + 30 * 1224, 5807085.0 - 30 * 300)
    block = layer.dataProvider().block(2, extent, 1024, 1024)
    assert block.isValid() and (block.width(), block.height()) == (1024, 1024)
    touched = TileGrid(ROWS, COLS, 128, 128).tiles_touching(300, 200, 1024, 1024)
    assert dec.decoded_tiles - before <= len(touched)   # some may be cached from the previous test
    assert block.value(0, 0) == data[1, 300, 200] and block.value(1023, 1023) == data[1, 1323, 1223]
    del block, layer


def test_overview_read_decodes_no_full_resolution_tile(big):
    dst, data = big
    with open_hsic(dst) as r:
        levels = read_levels(r)
        trailer = r.trailer_range[1] - r.trailer_range[0]
        size = r.file_size
        assert r.format_version == (1, 1)
    assert sorted(levels) == [4, 16]
    assert trailer / size < 0.1                   # the levels' share of the file (and of the rate)
    g = gdal.Open(dst + ".vrt")
    band = g.GetRasterBand(1)
    assert band.GetOverviewCount() == 2
    assert (band.GetOverview(0).XSize, band.GetOverview(1).XSize) == (750, 188)
    dec = pixelfn.decoder_for(dst)
    before = dec.decoded_tiles
    small = g.ReadAsArray(buf_xsize=750, buf_ysize=750)   # a zoomed-out view: GDAL takes factor 4
    coarse = g.ReadAsArray(buf_xsize=188, buf_ysize=188)  # further out: factor 16
    assert dec.decoded_tiles == before, "an overview read decoded full-resolution tiles"
    assert pixelfn.level_decoder_for(dst, 4).decoded_tiles == 36   # 750 x 750 in 128-pixel tiles
    for f, view in ((4, small), (16, coarse)):   # the corners against block means of the source
        for y, x in ((0, 0), (2480, 2480)):       # block-aligned for both factors
            mean, ok = block_mean(data[:, y:y + 512, x:x + 512], f, -32768)
            np.testing.assert_array_equal(view[:, y // f:(y + 512) // f, x // f:(x + 512) // f],
                                          np.where(ok, np.rint(mean), -32768))
    assert small[0, 0, 0] == -32768 and small[0, 10, 10] != -32768
    del band, g


def test_moved_pair_still_opens(make_raster, tmp_path):
    src = make_raster(bands=8, rows=40, cols=30)
    a = tmp_path / "a"
    a.mkdir()
    dst = str(a / "c.hsic")
    expected = hsi_gdal.Translate(dst, src).ReadAsArray()
    moved = tmp_path / "elsewhere" / "deeper"
    moved.mkdir(parents=True)
    shutil.move(dst, moved / "c.hsic")
    shutil.move(dst + ".vrt", moved / "renamed.vrt")
    shutil.rmtree(a)                              # the absolute path in the sidecar leads nowhere now
    g = gdal.Open(str(moved / "renamed.vrt"))   # moved, and the sidecar renamed too
    np.testing.assert_array_equal(g.ReadAsArray(), expected)
    del g
    # Relative to the working directory, as a user types it.
    cwd = os.getcwd()
    os.chdir(tmp_path / "elsewhere")
    try:
        g = gdal.Open(os.path.join("deeper", "renamed.vrt"))
        np.testing.assert_array_equal(g.GetRasterBand(3).ReadAsArray(), expected[2])
        del g
    finally:
        os.chdir(cwd)


def test_moved_sidecar_without_its_hsic_fails_clearly(make_raster, tmp_path):
    dst = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(dst, make_raster(bands=8, rows=20, cols=10))
    other = tmp_path / "other"
    other.mkdir()
    shutil.move(dst + ".vrt", other / "c.hsic.vrt")
    os.remove(dst)
    g = gdal.Open(str(other / "c.hsic.vrt"))
    with pytest.raises(RuntimeError):
        g.ReadAsArray()
    del g


def test_rasterio_opens_moved_sidecar_with_overviews(big, tmp_path):
    rasterio = pytest.importorskip("rasterio")
    dst, data = big
    shutil.copy(dst, tmp_path / "big.hsic")
    shutil.copy(dst + ".vrt", tmp_path / "big.hsic.vrt")
    with rasterio.open(tmp_path / "big.hsic.vrt") as r:
        assert r.count == BANDS and r.overviews(1) == [4, 16]
        from rasterio.windows import Window

        np.testing.assert_array_equal(r.read(2, window=Window(2900, 2950, 100, 50)),
                                      data[1, 2950:3000, 2900:3000])


def test_sidecar_of_an_earlier_version_still_reads(make_raster, tmp_path):
    """Sidecars written before relative lookup carry only the absolute path: still honoured."""
    import re

    dst = str(tmp_path / "c.hsic")
    expected = hsi_gdal.Translate(dst, make_raster(bands=8, rows=20, cols=10)).ReadAsArray()
    text = open(dst + ".vrt").read()
    old = re.sub(r' (file|vrt|key)="[^"]*"', "", text)
    assert "file=" not in old and 'path="' in old
    with open(tmp_path / "old.vrt", "w") as f:
        f.write(old)
    g = gdal.Open(str(tmp_path / "old.vrt"))
    np.testing.assert_array_equal(g.ReadAsArray(), expected)
    del g


def test_sidecar_carries_each_band_offset_and_scale(make_raster, tmp_path):
    """Non-zero offsets (every other fixture has 0.0) reach the sidecar, GDAL and hsi_gdal, band by band."""
    src = make_raster(bands=4, rows=12, cols=10)
    ds = gdal.Open(src, gdal.GA_Update)
    for i in range(4):
        ds.GetRasterBand(i + 1).SetOffset(-0.25 * (i + 1))
        ds.GetRasterBand(i + 1).SetScale(2e-4 * (i + 1))
    ds = None
    dst = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(dst, src)
    g, h = gdal.Open(dst + ".vrt"), hsi_gdal.Open(dst)
    for i in range(4):
        assert g.GetRasterBand(i + 1).GetOffset() == pytest.approx(-0.25 * (i + 1))
        assert g.GetRasterBand(i + 1).GetScale() == pytest.approx(2e-4 * (i + 1))
        assert h.GetRasterBand(i + 1).GetOffset() == pytest.approx(-0.25 * (i + 1))
    del g, h


def test_rewritten_hsic_is_not_read_from_the_old_file_cached_tiles(make_raster, tmp_path):
    """The pixel function's decoders are shared per process: a .hsic rewritten in place (same path) must be
    decoded afresh, not served from the tiles of the file that was there before."""
    dst = str(tmp_path / "c.hsic")
    first = hsi_gdal.Translate(dst, make_raster("a.tif", bands=4, rows=20, cols=16, seed=1)).ReadAsArray()
    g = gdal.Open(dst + ".vrt")
    np.testing.assert_array_equal(g.ReadAsArray(), first)
    del g
    second = hsi_gdal.Translate(dst, make_raster("b.tif", bands=4, rows=20, cols=16, seed=2)).ReadAsArray()
    assert not np.array_equal(first, second)
    g = gdal.Open(dst + ".vrt")
    np.testing.assert_array_equal(g.ReadAsArray(), second)
    del g
