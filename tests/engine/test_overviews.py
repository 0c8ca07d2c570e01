"""Overview levels in the .hsic trailer (format 1.1): layout, old files, corruption, cancel, cost."""

import os

import numpy as np
import pytest

from engine.errors import CancelledError, FormatError
from engine.format.container import Header, open_hsic, write_hsic
from engine.overviews import LevelDecoder, block_mean, read_levels
from engine.pipeline import SceneDecoder, SceneInfo, ScenePass, compress_scene
from engine.tiling import TileGrid
from tests import fast_codec


@pytest.fixture
def codec():
    registered = fast_codec.install()
    yield fast_codec.CODEC_ID
    if registered:
        fast_codec.uninstall()


def _scene(rows=300, cols=260, bands=4, seed=0):
    rng = np.random.default_rng(seed)
    data = rng.integers(100, 4000, (bands, rows, cols)).astype(np.int16)
    data[:, :9, :13] = -1
    info = SceneInfo(rows, cols, bands, "int16", nodata=-1)
    return info, data, (lambda y, x, h, w: data[:, y:y + h, x:x + w])


def test_trailer_is_kept_and_marks_minor_version(tmp_path):
    h = Header.create(rows=4, cols=4, bands=1, dtype="uint8", tile_rows=4, tile_cols=4, codec="cae1d", quality=1)
    plain, extra = tmp_path / "a.hsic", tmp_path / "b.hsic"
    write_hsic(plain, h, [b"tile"])
    size = write_hsic(extra, h, [b"tile"], trailer=b"0123456789abcdef")
    assert size == os.path.getsize(extra) == os.path.getsize(plain) + 16
    with open_hsic(plain) as r:
        assert r.format_version == (1, 0) and r.trailer_range[0] == r.trailer_range[1] == r.file_size
        assert read_levels(r) == {}
    with open_hsic(extra) as r:
        assert r.format_version == (1, 1) and r.read_tile(0) == b"tile"
        assert r.read_trailer(2, 3) == b"234"
        with pytest.raises(FormatError):
            r.read_trailer(12, 5)
        with pytest.raises(FormatError, match="not an overview section"):
            read_levels(r)


def test_levels_decode_to_block_means_without_full_resolution(codec, tmp_path):
    info, data, read = _scene()
    dst = str(tmp_path / "s.hsic")
    compress_scene(info, read, dst, codec)             # default factors: 4 only for 300 x 260
    dec = SceneDecoder(dst)
    levels = read_levels(dec.reader)
    assert sorted(levels) == [4]
    lv = LevelDecoder(levels[4], dec.codec)
    got = lv.read(0, 0, 75, 65, [0, 3])
    mean, ok = block_mean(data, 4, -1)
    np.testing.assert_array_equal(got, np.where(ok, np.rint(mean), -1)[[0, 3]])
    assert got[0, 0, 0] == -1 and got[0, 2, 3] != -1  # the no-data corner: all-invalid blocks only
    assert lv.decoded_tiles == 1 and dec.decoded_tiles == 0
    dec.close()


def test_no_overviews_gives_a_plain_1_0_file(codec, tmp_path):
    info, _, read = _scene()
    with_ovr, without = str(tmp_path / "a.hsic"), str(tmp_path / "b.hsic")
    compress_scene(info, read, with_ovr, codec, overviews=(4, 16))
    compress_scene(info, read, without, codec, overviews=())
    with open_hsic(without) as r:
        assert r.format_version == (1, 0) and r.file_size == os.path.getsize(without)
    with open_hsic(with_ovr) as r:
        assert sorted(read_levels(r)) == [4, 16]
        share = (r.trailer_range[1] - r.trailer_range[0]) / r.file_size
    # Random data codes to about its raw size: the levels cost about 1/16 + 1/256 of it.
    assert 0.04 < share < 0.08
    assert os.path.getsize(with_ovr) - os.path.getsize(without) == r.trailer_range[1] - r.trailer_range[0]


def test_corrupt_overview_section_is_detected(codec, tmp_path):
    info, _, read = _scene(rows=260, cols=70, bands=2)
    dst = tmp_path / "s.hsic"
    compress_scene(info, read, str(dst), codec)
    with open_hsic(dst) as r:
        start, end = r.trailer_range
        levels = read_levels(r)
        first_payload = levels[4].entries[0][0]
    good = dst.read_bytes()
    bad_path = tmp_path / "bad.hsic"
    for pos in list(range(start, start + first_payload, 7)) + [start + first_payload + 3, end - 1]:
        bad = bytearray(good)
        bad[pos] ^= 0x40
        bad_path.write_bytes(bytes(bad))
        with open_hsic(bad_path) as r:  # the full-resolution part is intact and still opens
            with pytest.raises(FormatError):
                for lv in read_levels(r).values():
                    for i in range(len(lv.entries)):
                        lv.read_tile(i)


def test_cancel_during_overview_pass_leaves_nothing(codec, tmp_path):
    info, _, read = _scene()
    dst = tmp_path / "s.hsic"
    calls = []

    def progress(f):
        calls.append(f)
        return False

    with pytest.raises(CancelledError):
        compress_scene(info, read, str(dst), codec, progress=progress)
    assert len(calls) == 1 and 0 < calls[0] < 0.1   # progress moves within the overview pass
    assert not dst.exists() and not os.path.exists(str(dst) + ".partial")


def test_block_mean_of_whole_valid_blocks_is_the_masked_mean_to_the_last_bit():
    raw = np.random.default_rng(2).integers(-3000, 9000, (3, 16, 12)).astype(np.int16)
    mean, ok = block_mean(raw, 4, -32768)  # no sample is no-data: the unmasked path
    x = np.where(np.ones(raw.shape, bool), raw, 0).astype(np.float64)  # the masked path's arrays
    want = x.reshape(3, 4, 4, 3, 4).sum(axis=(2, 4)) / np.ones(raw.shape).reshape(3, 4, 4, 3, 4).sum(axis=(2, 4))
    assert ok.all() and np.array_equal(mean.view(np.uint64), want.view(np.uint64))


def test_a_rate_search_makes_the_level_windows_once(codec, tmp_path):
    # Two trials of one scene (as a rate search makes them) write the same overview section; the second
    # reads no full-resolution window for it.
    info, data, read = _scene(rows=300, cols=260)
    reads = []

    def counted(y, x, h, w):
        reads.append((y, x, h, w))
        return read(y, x, h, w)

    scene_pass = ScenePass()
    a, b = str(tmp_path / "a.hsic"), str(tmp_path / "b.hsic")
    compress_scene(info, counted, a, codec, scene_pass=scene_pass)
    first = len(reads)
    compress_scene(info, counted, b, codec, scene_pass=scene_pass)
    assert scene_pass.levels and len(reads) - first < first - TileGrid(300, 260, 128, 128).n_tiles
    assert open(a, "rb").read() == open(b, "rb").read()
    plain = str(tmp_path / "plain.hsic")
    compress_scene(info, read, plain, codec)
    assert open(plain, "rb").read() == open(a, "rb").read()
