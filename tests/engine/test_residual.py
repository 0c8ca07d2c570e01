"""Error-bounded mode: the bound holds on every valid sample, E = 0 is lossless, bad sections are refused."""

import json
import struct
import zlib

import numpy as np
import pytest

from engine import codec_ids, registry, residual
from engine.codecs.base import CodecInfo, TileCodec
from engine.errors import CodecError, FormatError, InputError
from engine.format.container import Header, open_hsic
from engine.payloads import decode_payload, encode_payload, finish as finish_samples
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
from tests import fast_codec
from tests.conftest import SAMPLE


class Coarse(TileCodec):
    """A fast lossy stand-in: normalised samples rounded to 1/40, so residuals are real and wide."""

    info = CodecInfo(id=fast_codec.CODEC_ID, title="coarse (tests only)", paper="-", qualities=(1,), default_quality=1,
                     uses_weights=False)
    pad_edge_tiles = False

    def encode_tile(self, tile):
        return zlib.compress(np.rint(np.asarray(tile, np.float64) * 40).astype("<i4").tobytes(), 1)

    def decode_tile(self, data, shape):
        # Bands fastest in memory, the layout cae1d returns (it transposes): layouts must not matter.
        tile = (np.frombuffer(zlib.decompress(data), dtype="<i4").reshape(shape) / 40).astype(np.float32)
        return np.ascontiguousarray(tile.transpose(1, 2, 0)).transpose(2, 0, 1)


@pytest.fixture
def coarse(monkeypatch):
    monkeypatch.setitem(codec_ids.CODEC_NUMBERS, fast_codec.CODEC_ID, fast_codec.NUMBER)
    monkeypatch.setitem(registry._REGISTRY, fast_codec.CODEC_ID, Coarse)
    return fast_codec.CODEC_ID


def cube_for(dtype, nodata, seed=0, shape=(9, 13, 11)):
    rng = np.random.default_rng(seed)
    bands, rows, cols = shape
    wl = np.linspace(0, 1, bands)[:, None, None]
    x = 3000 * (rng.uniform(0.1, 0.5, (1, rows, cols)) + rng.uniform(-0.2, 0.2, (1, rows, cols)) * np.sin(3 * wl))
    x = x + rng.normal(0, 30, shape)
    if dtype.startswith("float"):
        cube = (x / 10000).astype(dtype)
        cube[1, 2, 3] = np.nan
        cube[0, 0, 0] = -0.0
    else:
        cube = x.astype(dtype)
    if nodata is not None:
        cube[:, 0, :3] = nodata
        cube[4, 5, :] = nodata
    return cube


def roundtrip(tmp_path, cube, nodata, codec, e, tile=6, **kw):
    info = SceneInfo(rows=cube.shape[1], cols=cube.shape[2], bands=cube.shape[0], dtype=str(cube.dtype),
                     nodata=nodata)
    path = str(tmp_path / "c.hsic")
    compress_scene(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], path, codec, tile_size=tile,
                   device="cpu", max_abs_error=e, **kw)
    dec = SceneDecoder(path, device="cpu")
    try:
        return dec.read(), dec.header, path
    finally:
        dec.close()


def valid_of(cube, nodata):
    v = ~np.isnan(cube) if cube.dtype.kind == "f" else np.ones(cube.shape, bool)
    if nodata is not None and not np.isnan(nodata):
        v &= cube != nodata
    return v


def same_bits(a, b):
    return a.dtype == b.dtype and np.array_equal(a.view(np.uint8), b.view(np.uint8))


CASES = [("int16", -32768.0), ("uint16", 0.0), ("uint16", None), ("float32", None), ("float32", -9999.0),
         ("float32", float("nan")), ("float64", None), ("int32", -1.0), ("uint8", 255.0)]


@pytest.mark.parametrize("dtype, nodata", CASES)
def test_zero_is_lossless_bit_for_bit(tmp_path, coarse, dtype, nodata):
    cube = cube_for(dtype, nodata) if dtype != "uint8" else (cube_for("int16", None) // 20).astype("uint8")
    out, header, _ = roundtrip(tmp_path, cube, nodata, coarse, 0)
    assert header.max_abs_error == 0.0
    assert same_bits(out, cube)  # NaN, -0.0, nodata and every valid sample exactly


@pytest.mark.parametrize("dtype, nodata", CASES[:6])
@pytest.mark.parametrize("e", [1, 5, 50])
def test_bound_holds_on_every_valid_sample(tmp_path, coarse, dtype, nodata, e):
    cube = cube_for(dtype, nodata, seed=e)
    e_units = e if dtype.startswith(("int", "uint")) else e * 1e-4  # floats hold reflectance in [0, 1]
    out, _, _ = roundtrip(tmp_path, cube, nodata, coarse, e_units)
    valid = valid_of(cube, nodata)
    err = np.abs(out.astype(np.float64) - cube.astype(np.float64))[valid]
    assert err.max() <= e_units
    assert err.max() > 0  # lossy: the residual is really quantised, not lossless
    assert same_bits(out[~valid], cube[~valid])  # nodata and NaN stay exact
    if nodata is not None and not np.isnan(nodata):
        assert not np.any(out[valid] == nodata)  # a valid sample never reads as nodata


def test_values_next_to_nodata_keep_the_bound(tmp_path, coarse):
    # uint16 with nodata 0 and data at 1..3: reconstructions of 0 must not become nodata nor break the bound.
    rng = np.random.default_rng(3)
    cube = rng.integers(1, 4, (5, 8, 8)).astype("uint16")
    cube[:, 0, 0] = 0
    for e in (1, 2, 5):
        out, _, _ = roundtrip(tmp_path, cube, 0.0, coarse, e)
        valid = cube != 0
        assert np.abs(out.astype(int) - cube.astype(int))[valid].max() <= e
        assert np.all(out[valid] != 0) and np.all(out[~valid] == 0)


def test_samples_the_nodata_rule_would_move_are_kept_exactly(tmp_path, coarse):
    # nodata 0 inside the data range: a valid -1 decoded as 0 would be moved to +1 (error 2 > E = 1), so the
    # encoder must store it as an exception; the decoder must apply it whatever its array layout.
    rng = np.random.default_rng(4)
    cube = rng.choice(np.array([-3, -2, -1, 1, 2, 3], dtype="int16"), (6, 9, 8))
    cube[:, 0, 0] = 0
    for e in (1, 2):
        out, _, _ = roundtrip(tmp_path, cube, 0.0, coarse, e)
        valid = cube != 0
        assert np.abs(out.astype(int) - cube.astype(int))[valid].max() <= e
        assert np.all(out[valid] != 0) and np.all(out[~valid] == 0)


def test_non_integer_bound_for_integers_and_extremes(tmp_path, coarse):
    cube = cube_for("int16", None)
    cube[2, 3, :] = 32767
    cube[3, 3, :] = -32767
    out, _, _ = roundtrip(tmp_path, cube, None, coarse, 2.7)  # integers: within floor(2.7) = 2
    assert np.abs(out.astype(int) - cube.astype(int)).max() <= 2


@pytest.mark.parametrize("e", [0, 1, 5, 50])
def test_real_codec_on_real_data(tmp_path, e):
    from osgeo import gdal

    ds = gdal.Open(str(SAMPLE))
    cube = ds.ReadAsArray(0, 0, 20, 18)  # EnMAP, int16, nodata -32768
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    cube[:, 0, :2] = nodata
    out, header, path = roundtrip(tmp_path, cube, nodata, "cae1d", e, tile=12, quality=1)
    valid = valid_of(cube, nodata)
    assert np.abs(out.astype(int) - cube.astype(int))[valid].max() <= e
    assert np.array_equal(out[~valid], cube[~valid])
    if e == 0:
        assert np.array_equal(out, cube)
    with open_hsic(path) as r:
        assert r.format_version == (1, 2) and r.header.max_abs_error == e


def test_overviews_are_stored_without_the_bound(tmp_path, coarse):
    from engine.overviews import read_levels

    cube = cube_for("int16", None, shape=(4, 40, 36))
    out, header, path = roundtrip(tmp_path, cube, None, coarse, 0, tile=8, overviews=(4,))
    assert np.array_equal(out, cube)
    with open_hsic(path) as r:
        levels = read_levels(r)
        assert list(levels) == [4] and levels[4].header.max_abs_error is None


@pytest.mark.parametrize("bad", [-1, -0.5, float("nan"), float("inf"), True, "1"])
def test_bad_bounds_are_input_errors(tmp_path, coarse, bad):
    with pytest.raises(InputError, match="max_abs_error must be a finite number >= 0"):
        roundtrip(tmp_path, cube_for("int16", None), None, coarse, bad)
    assert not (tmp_path / "c.hsic").exists()


def test_header_field_old_files_and_validation():
    base = dict(rows=4, cols=4, bands=2, dtype="int16", tile_rows=4, tile_cols=4, codec="cae1d", quality=1)
    old = Header.create(**base)
    assert old.max_abs_error is None and "max_abs_error" not in json.loads(old.to_json_bytes())
    new = Header.create(**base, max_abs_error=3)
    assert Header.from_json_bytes(new.to_json_bytes()).max_abs_error == 3.0
    for bad in (-1, "nan", "1", True):
        obj = json.loads(new.to_json_bytes())
        obj["max_abs_error"] = bad
        with pytest.raises(FormatError, match="max_abs_error"):
            Header.from_json_bytes(json.dumps(obj).encode())


# -- corrupt sections ---------------------------------------------------------------------------

@pytest.fixture
def bounded_tile(coarse):
    cube = cube_for("int16", -32768.0, shape=(5, 6, 7))
    header = Header.create(rows=6, cols=7, bands=5, dtype="int16", nodata=-32768.0, tile_rows=6, tile_cols=7,
                           codec=fast_codec.CODEC_ID, quality=1, norm_offset=0.0, norm_scale=4000.0,
                           max_abs_error=2)
    codec = Coarse(1, "cpu")
    payload = encode_payload(cube, header, codec)
    out = decode_payload(payload, header, codec, 6, 7)
    assert np.abs(out.astype(int) - cube.astype(int))[cube != -32768].max() <= 2
    # where the residual section starts: flags, one mask, codec length and bytes
    (mask_len,) = struct.unpack_from("<I", payload, 1)
    (n,) = struct.unpack_from("<I", payload, 5 + mask_len)
    return payload, 9 + mask_len + n, header, codec


def test_corrupt_residual_sections_are_format_errors(bounded_tile):
    payload, start, header, codec = bounded_tile
    sizes, pos = [], start + 4
    for _ in range(3):  # band parameters, rANS string, low bits
        (n,) = struct.unpack_from("<I", payload, pos)
        sizes.append((pos, n))
        pos += 4 + n
    (p0, n0), (p1, n1), (p2, n2) = sizes
    params = zlib.decompress(payload[p0 + 4:p0 + 4 + n0])

    def with_params(raw):
        blob = zlib.compress(raw)
        return payload[:p0] + struct.pack("<I", len(blob)) + blob + payload[p0 + 4 + n0:]

    damaged = [
        payload[:start + 3],  # cut inside the CRC
        payload[:p1 + 2],  # cut inside a length
        payload[:-1],  # exceptions cut short
        payload + b"\0",  # trailing byte
        with_params(params[:-1]),  # band parameters of the wrong size
        with_params(params[:6] + bytes([200]) + params[7:]),  # unknown model
        with_params(params[:7] + bytes([64]) + params[8:]),  # shift out of range
        with_params(params[:7] + bytes([3]) + params[8:]),  # low bits of the wrong length
        payload[:p1] + struct.pack("<I", 2**32 - 1) + payload[p1 + 4:],  # string past the end
        payload[:p2] + struct.pack("<I", 7) + payload[p2 + 4:],  # wrong low-bit length
        payload[:pos] + struct.pack("<I", 10**6) + payload[pos + 4:],  # too many exceptions
        payload[:5] + struct.pack("<I", 2**31) + payload[9:],  # mask length past the end
    ]
    for bad in damaged:
        with pytest.raises(FormatError):
            decode_payload(bad, header, codec, 6, 7)
    # A plain (unbounded) tile in a bounded file, and the other way round, are refused.
    plain = encode_payload(np.zeros((5, 6, 7), "int16"), Header.create(**{**header.to_dict(), "max_abs_error": None,
                                                                         "nodata": -32768.0}), codec)
    with pytest.raises(FormatError, match="tile flags"):
        decode_payload(plain, header, codec, 6, 7)


def test_random_section_bytes_never_crash(bounded_tile):
    payload, start, header, codec = bounded_tile
    rng = np.random.default_rng(0)
    for _ in range(200):
        body = bytearray(payload[start:])
        for _ in range(rng.integers(1, 6)):
            body[rng.integers(4, len(body))] ^= 1 << int(rng.integers(8))  # keep the CRC: reach the decoder
        try:
            out = decode_payload(payload[:start] + bytes(body), header, codec, 6, 7)
        except FormatError as e:
            assert "\n" not in str(e)
        else:
            assert out.shape == (5, 6, 7) and out.dtype == np.int16


def test_a_different_learned_reconstruction_is_refused(bounded_tile):
    payload, start, header, codec = bounded_tile
    crc = struct.unpack_from("<I", payload, start)[0] ^ 1
    with pytest.raises(CodecError, match="bound cannot be guaranteed"):
        decode_payload(payload[:start] + struct.pack("<I", crc) + payload[start + 4:], header, codec, 6, 7)


def test_models_are_integer_tables():
    # compressai needs strictly increasing CDFs ending at 2^16; built without floats, so the same everywhere.
    for cdf in residual.CDFS:
        assert cdf[0] == 0 and cdf[-1] == 1 << 16 and all(b > a for a, b in zip(cdf, cdf[1:]))
        assert len(cdf) == 2 * residual.HALF_WIDTH + 3


def test_exceptions_apply_whatever_the_memory_layout():
    # Every sample decodes to 0 = nodata and is moved to +1 by the nodata rule: the -1s break E = 1 and
    # must come back from the exact list, with the learned tile in cae1d's layout (bands fastest).

    x = np.random.default_rng(5).choice(np.array([-1, 1], dtype="int16"), (4, 5, 6))
    valid = np.ones(x.shape, bool)
    pred = np.zeros((5, 6, 4), "int16").transpose(2, 0, 1)
    finish = lambda rec: finish_samples(rec, 0.0, valid, None)  # noqa: E731
    out = residual.decode_section(residual.encode_section(x, pred, valid, 1, finish), pred, valid, 1, finish)
    assert np.abs(out.astype(int) - x).max() <= 1 and not (out == 0).any()
