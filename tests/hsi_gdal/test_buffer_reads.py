"""Reads at any window and any buffer size (zoomed-out and zoomed-in views) give what GDAL gives for the
decoded raster read the same way: through the sidecar with osgeo, and through hsi_gdal.Open."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st
from osgeo import gdal

import hsi_gdal
from engine.format.container import open_hsic
from engine.overviews import read_levels
from hsi_gdal import pixelfn
from hsi_gdal.resample import nearest_indices
from tests import fast_codec

ROWS, COLS, BANDS, TILE = 150, 170, 4, 32       # no stored overview (too small), 5 x 6 tiles
OROWS, OCOLS = 300, 280                           # one stored overview (factor 4)


def _scene(folder, name, rows, cols):
    rng = np.random.default_rng(rows)
    data = rng.integers(-500, 3000, size=(BANDS, rows, cols)).astype(np.int16)
    src = str(folder / f"{name}.tif")
    ds = gdal.GetDriverByName("GTiff").Create(src, cols, rows, BANDS, gdal.GDT_Int16)
    ds.SetGeoTransform((500000.0, 30.0, 0.0, 5800000.0, 0.0, -30.0))
    for b in range(BANDS):
        ds.GetRasterBand(b + 1).WriteArray(data[b])
    ds = None
    dst = str(folder / f"{name}.hsic")
    hsi_gdal.Translate(dst, src, codec=fast_codec.CODEC_ID, tile_size=TILE)
    decoded = str(folder / f"{name}.decoded.tif")
    hsi_gdal.Translate(decoded, dst)
    return dst, decoded


@pytest.fixture(scope="module")
def scenes(tmp_path_factory):
    registered = fast_codec.install()
    folder = tmp_path_factory.mktemp("bufreads")
    plain = _scene(folder, "plain", ROWS, COLS)
    ovr_hsic, ovr_tif = _scene(folder, "ovr", OROWS, OCOLS)
    # The reference for the scene with a stored level: the decoded GeoTIFF with that level as its overview.
    with open_hsic(ovr_hsic) as reader:
        factors = sorted(read_levels(reader))
    assert factors == [4]
    ref = gdal.Open(ovr_tif, gdal.GA_Update)
    ref.BuildOverviews("NEAREST", factors)
    level = pixelfn.level_decoder_for(ovr_hsic, 4)
    full = level.read(0, 0, level.header.rows, level.header.cols, list(range(BANDS)))
    for b in range(BANDS):
        ov = ref.GetRasterBand(b + 1).GetOverview(0)
        assert (ov.YSize, ov.XSize) == full.shape[1:]
        ov.WriteArray(full[b])
        del ov
    ref = None
    opened = {k: (gdal.Open(h + ".vrt"), gdal.Open(t), hsi_gdal.Open(h))
              for k, (h, t) in {"plain": plain, "ovr": (ovr_hsic, ovr_tif)}.items()}
    yield opened
    opened.clear()
    if registered:
        fast_codec.uninstall()


def _request(draw, rows, cols):
    x = draw(st.integers(0, cols - 1))
    y = draw(st.integers(0, rows - 1))
    w = draw(st.integers(1, cols - x))
    h = draw(st.integers(1, rows - y))
    bw = draw(st.integers(1, 2 * w + 3))
    bh = draw(st.integers(1, 2 * h + 3))
    return x, y, w, h, bw, bh


requests = st.composite(_request)

SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def assert_band_read_matches(scene, req, band):
    """One band read through the sidecar equals the same read of the decoded GeoTIFF."""
    vrt, tif, _ = scene
    x, y, w, h, bw, bh = req
    got = vrt.GetRasterBand(band).ReadAsArray(x, y, w, h, buf_xsize=bw, buf_ysize=bh)
    want = tif.GetRasterBand(band).ReadAsArray(x, y, w, h, buf_xsize=bw, buf_ysize=bh)
    np.testing.assert_array_equal(got, want)


@SETTINGS
@given(req=requests(ROWS, COLS), band=st.integers(1, BANDS))
def test_sidecar_equals_decoded_geotiff_at_any_buffer(scenes, req, band):
    assert_band_read_matches(scenes["plain"], req, band)


@SETTINGS
@given(req=requests(ROWS, COLS), bands=st.lists(st.integers(1, BANDS), min_size=1, max_size=BANDS, unique=True))
def test_band_subsets_and_open_equal_decoded_geotiff(scenes, req, bands):
    vrt, tif, hds = scenes["plain"]
    x, y, w, h, bw, bh = req
    want = tif.ReadAsArray(x, y, w, h, buf_xsize=bw, buf_ysize=bh, band_list=bands)
    want = want.reshape(len(bands), bh, bw)
    got = vrt.ReadAsArray(x, y, w, h, buf_xsize=bw, buf_ysize=bh, band_list=bands).reshape(want.shape)
    np.testing.assert_array_equal(got, want)
    full = hds.ReadAsArray(x, y, w, h, buf_xsize=bw, buf_ysize=bh)
    np.testing.assert_array_equal(full[[b - 1 for b in bands]], want)
    np.testing.assert_array_equal(hds.GetRasterBand(bands[0]).ReadAsArray(x, y, w, h, bw, bh), want[0])


@SETTINGS
@given(req=requests(OROWS, OCOLS), band=st.integers(1, BANDS))
def test_stored_overviews_used_like_geotiff_overviews(scenes, req, band):
    assert_band_read_matches(scenes["ovr"], req, band)


def test_zoomed_out_read_decodes_only_sampled_tiles(scenes):
    vrt, _, hds = scenes["plain"]
    dec = pixelfn.decoder_for(hds.path)
    dec.set_cache_bytes(0)  # count every decode
    before = dec.decoded_tiles
    # 2 x 2 samples of the whole scene: rows 37 and 112, columns 42 and 127 -> 4 of the 30 tiles.
    out = vrt.GetRasterBand(1).ReadAsArray(0, 0, COLS, ROWS, buf_xsize=2, buf_ysize=2)
    assert out.shape == (2, 2)
    assert dec.decoded_tiles - before == 4
    dec.set_cache_bytes(256 << 20)


def test_nearest_indices_follow_gdal():
    assert list(nearest_indices(0, 128, 64, 256)) == list(range(1, 128, 2))
    assert list(nearest_indices(10, 3, 6, 256)) == [10, 10, 11, 11, 12, 12]
    assert list(nearest_indices(0, 5, 2, 5)) == [1, 3]


def test_bad_buffer_sizes_are_one_line_errors(scenes):
    _, _, hds = scenes["plain"]
    for bad in (0, -3, 2.5):
        with pytest.raises(hsi_gdal.InputError, match="buf_xsize"):
            hds.ReadAsArray(0, 0, 10, 10, buf_xsize=bad)
