"""Scene pipeline: normalisation, no-data masks, dtype casting, weights digest, cancellation."""

import numpy as np
import pytest

from engine.errors import CancelledError, CodecError
from engine.format.container import open_hsic
from engine.normalise import fill_invalid, valid_mask
from engine.payloads import to_dtype
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene


def scene(bands=20, rows=50, cols=70, dtype="int16", seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)[:, None, None]
    x = 3000 * (rng.uniform(0.2, 0.6, (1, rows, cols)) + 0.1 * np.sin(5 * wl))
    return x.astype(dtype)


def compress(tmp_path, cube, nodata=None, tile=32, **kw):
    info = SceneInfo(rows=cube.shape[1], cols=cube.shape[2], bands=cube.shape[0], dtype=str(cube.dtype),
                     nodata=nodata)
    path = str(tmp_path / "s.hsic")
    compress_scene(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], path, "cae1d", tile_size=tile,
                   device="cpu", **kw)
    return path


def test_fill_invalid_interpolates_along_spectrum():
    x = np.array([1.0, 0.0, 0.0, 4.0, 0.0], dtype=np.float32).reshape(5, 1, 1)
    valid = np.array([1, 0, 0, 1, 0], dtype=bool).reshape(5, 1, 1)
    fill_invalid(x, valid)
    np.testing.assert_allclose(x.ravel(), [1, 2, 3, 4, 4])


def test_to_dtype_rounds_clips_and_never_hits_nodata():
    x = np.array([-40000.0, -32768.2, 1.4, 40000.0])
    out = to_dtype(x, np.dtype("int16"), -32768, None)
    assert out.tolist() == [-32767, -32767, 1, 32767]


def test_nodata_and_nan_are_restored_exactly(tmp_path):
    cube = scene(dtype="float32")
    cube[3] = np.nan            # a whole band missing, like EnMAP's water bands
    cube[:, 5, 7] = -9999.0     # a nodata pixel
    path = compress(tmp_path, cube, nodata=-9999.0)
    dec = SceneDecoder(path, device="cpu")
    out = dec.read()
    assert (out[:, 5, 7] == -9999.0).all()
    out[3, 5, 7] = np.nan
    assert np.isnan(out[3]).all()
    valid = valid_mask(cube, -9999.0)
    assert not np.isnan(out[valid]).any() and not (out[valid] == -9999.0).any()


def test_window_reads_decode_only_touched_tiles(tmp_path):
    cube = scene(rows=100, cols=100)
    path = compress(tmp_path, cube, tile=32)   # 4 x 4 tiles
    dec = SceneDecoder(path, device="cpu")
    full = dec.read()
    dec2 = SceneDecoder(path, device="cpu")
    w = dec2.read(10, 40, 20, 20)              # rows 10-29, cols 40-59: tiles (0,1) only
    assert dec2.decoded_tiles == 1
    np.testing.assert_array_equal(w, full[:, 10:30, 40:60])
    dec2.read(10, 40, 20, 20, bands=[0])        # another band of the same window: cache hit
    assert dec2.decoded_tiles == 1


def test_cancel_leaves_no_file(tmp_path):
    cube = scene(rows=100, cols=100)
    calls = []

    def progress(f):
        calls.append(f)
        return len(calls) < 2

    with pytest.raises(CancelledError):
        compress(tmp_path, cube, tile=32, progress=progress)
    assert list(tmp_path.iterdir()) == []


def test_mismatched_weights_are_refused(tmp_path, monkeypatch):
    path = compress(tmp_path, scene())
    with open_hsic(path) as r:
        assert len(r.header.weights_sha256) == 64
    from engine import weight_files

    monkeypatch.setattr(weight_files, "file_sha256", lambda p: "0" * 64)
    with pytest.raises(CodecError, match="other weights"):
        SceneDecoder(path, device="cpu")


def test_spatial_codecs_get_full_padded_tiles_and_output_is_cropped():
    from engine.format.container import Header
    from engine.payloads import decode_payload, encode_payload

    class Raw16:  # a stand-in spatial codec: float16 samples, checks the tile shape it is given
        pad_edge_tiles = True

        def encode_tile(self, tile):
            assert tile.shape == (3, 8, 8)
            return tile.astype(np.float16).tobytes()

        def decode_tile(self, data, shape):
            assert shape == (3, 8, 8)
            return np.frombuffer(data, dtype=np.float16).reshape(shape).astype(np.float32)

        # the pipeline codes tiles in batches (TileCodec's default loops)
        def encode_tiles(self, tiles):
            return [self.encode_tile(t) for t in tiles]

        def decode_tiles(self, items):
            return [self.decode_tile(d, s) for d, s in items]

        decode_latents = decode_tiles  # what a decoder caches per tile (TileCodec's default)

        def expand(self, latent, bands):
            return latent if bands is None else latent[bands]

    raw = np.arange(3 * 5 * 6, dtype=np.int16).reshape(3, 5, 6) + 100
    raw[1, 2, 3] = -1
    header = Header.create(rows=5, cols=6, bands=3, dtype="int16", nodata=-1, tile_rows=8, tile_cols=8,
                           codec="cae1d", quality=1, norm_offset=100.0, norm_scale=100.0)
    out = decode_payload(encode_payload(raw, header, Raw16()), header, Raw16(), 5, 6)
    np.testing.assert_array_equal(out, raw)


def test_a_codec_crash_on_a_crafted_payload_is_a_format_error(tmp_path):
    """CRCs catch accidental damage; a crafted tile with valid CRCs that makes the codec itself raise
    (here the stand-in codec's reshape of a payload of the wrong length) is a one-line FormatError."""
    import zlib

    from engine.format.container import write_hsic
    from engine.errors import FormatError
    from tests import fast_codec

    registered = fast_codec.install()
    try:
        cube = np.arange(3 * 8 * 6, dtype=np.int16).reshape(3, 8, 6)
        info = SceneInfo(rows=8, cols=6, bands=3, dtype="int16")
        good = str(tmp_path / "good.hsic")
        compress_scene(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], good, fast_codec.CODEC_ID,
                       device="cpu", tile_size=4)
        with open_hsic(good) as r:
            header, tiles = r.header, [r.read_tile(i) for i in range(r.n_tiles)]
        assert tiles[1][0] == 0  # no masks: the codec's bytes follow the flags byte
        tiles[1] = b"\x00" + zlib.compress(b"\x00" * 12)  # a valid stream of the wrong length
        bad = str(tmp_path / "bad.hsic")
        write_hsic(bad, header, tiles)
        dec = SceneDecoder(bad, device="cpu")
        np.testing.assert_array_equal(dec.read(0, 0, 4, 4), cube[:, :4, :4])  # the other tiles decode
        with pytest.raises(FormatError, match=r"corrupt tile payload: ValueError") as e:
            dec.read()
        assert "\n" not in str(e.value)
        dec.close()
    finally:
        if registered:
            fast_codec.uninstall()
