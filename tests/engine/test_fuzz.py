"""Property tests: whatever a .hsic file holds, the reader and decoder answer with HSIC's own errors.

Files are damaged the ways scripts/fuzz_container.py damages them (that script runs 100,000 cases;
these few hundred run in the suite). Examples are derandomised so that the suite is repeatable.
"""

import json
import os
import struct
import time
import zlib

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import FormatError, HSICError, InputError
from engine.format.container import Header, open_hsic
from engine.payloads import decode_payload
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
from engine.registry import get_codec

FUZZ = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@pytest.fixture(scope="module", autouse=True)
def reuse_codecs():
    """One codec instance per quality for the whole module: loading weights per example is slow."""
    import functools

    import engine.pipeline

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(engine.pipeline, "get_codec", functools.lru_cache(maxsize=None)(get_codec))
        yield


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    """A small valid file with a nodata mask and an edge tile: (bytes, folder)."""
    folder = tmp_path_factory.mktemp("fuzz")
    rng = np.random.default_rng(0)
    cube = rng.uniform(100, 3000, (6, 11, 9)).astype("int16")
    cube[:, 0, :2] = -32768
    info = SceneInfo(rows=11, cols=9, bands=6, dtype="int16", nodata=-32768.0,
                     band_metadata=tuple({"wavelength": str(500 + i)} for i in range(6)))
    path = folder / "base.hsic"
    compress_scene(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], str(path), "cae1d", tile_size=4,
                   device="cpu")
    return path.read_bytes(), folder


def bounded_cube():
    cube = np.random.default_rng(1).uniform(100, 3000, (5, 9, 7)).astype("int16")
    cube[:, 0, :2] = -32768
    return cube


@pytest.fixture(scope="module")
def bounded_base(tmp_path_factory):
    """An error-bounded file (residual sections) with a nodata mask and edge tiles: (bytes, folder)."""
    folder = tmp_path_factory.mktemp("fuzz-bounded")
    cube = bounded_cube()
    info = SceneInfo(rows=9, cols=7, bands=5, dtype="int16", nodata=-32768.0)
    path = folder / "bounded.hsic"
    compress_scene(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], str(path), "cae1d", tile_size=4,
                   device="cpu", max_abs_error=2)
    return path.read_bytes(), folder


def layout(data):
    head_len, n = struct.unpack_from("<II", data, 16)
    return head_len, n, 28 + head_len


def fix_crcs(data, payloads=False):
    data = bytearray(data)
    head_len, n, index_pos = layout(data)
    struct.pack_into("<I", data, 24 + head_len, zlib.crc32(data[:24 + head_len]))
    if payloads:
        for i in range(n):
            off, length, _ = struct.unpack_from("<QII", data, index_pos + 16 * i)
            struct.pack_into("<I", data, index_pos + 16 * i + 12, zlib.crc32(data[off:off + length]))
    struct.pack_into("<I", data, index_pos + 16 * n, zlib.crc32(data[index_pos:index_pos + 16 * n]))
    return bytes(data)


def read_everything(path):
    """What a user does with a file: open it, read every tile, decode a window through the decoder."""
    with open_hsic(path) as r:
        for i in range(r.n_tiles):
            r.read_tile(i)
    dec = SceneDecoder(str(path), device="cpu")
    try:
        dec.read(0, 0, min(dec.header.rows, 8), min(dec.header.cols, 8))
    finally:
        dec.close()


def outcome(path):
    try:
        read_everything(path)
    except HSICError as e:
        assert "\n" not in str(e)  # one-line messages, fit for the CLI
        return type(e).__name__
    return "ok"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20)
    | st.sampled_from(["nan", "inf", "-inf", "cae1d", "int16", "float64"]),
    lambda inner: st.lists(inner, max_size=8) | st.dictionaries(st.text(max_size=5), inner, max_size=4),
    max_leaves=12,
)


@FUZZ
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), max_size=8),
       cut=st.none() | st.integers(0, 10**6),
       splice=st.none() | st.tuples(st.integers(0, 10**6), st.binary(min_size=1, max_size=40)))
def test_damaged_files_raise_format_errors(base, flips, cut, splice):
    data, folder = base
    data = bytearray(data)
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if splice:
        at, chunk = splice
        at %= len(data)
        data[at:at + len(chunk)] = chunk
    if cut is not None:
        del data[cut % len(data):]
    if bytes(data) == base[0]:
        return
    path = folder / "damaged.hsic"
    path.write_bytes(bytes(data))
    # Without CRCs fixed, every change is corruption (or the magic of a foreign file).
    assert outcome(path) == "FormatError"


@FUZZ
@given(field=st.sampled_from(["rows", "cols", "bands", "dtype", "nodata", "tile_rows", "tile_cols", "codec",
                              "quality", "weights_sha256", "norm_offset", "norm_scale", "geotransform",
                              "band_descriptions", "band_metadata", "band_scale", "band_offset",
                              "metadata", "codec_options", "crs_wkt"]),
       value=json_values, drop=st.booleans())
def test_header_edits_with_valid_crcs_fail_cleanly(base, field, value, drop):
    data, folder = base
    head_len, n, index_pos = layout(data)
    obj = Header.from_compact_bytes(data[24:24 + head_len]).to_dict()
    if drop:
        del obj[field]
    else:
        obj[field] = value
    head = zlib.compress(json.dumps(obj).encode(), 9)
    delta = len(head) - head_len
    out = bytearray(data[:24] + head + b"\0" * 4 + data[index_pos:])
    struct.pack_into("<H", out, 14, 0)  # header encoding 0: deflated JSON, which readers read forever
    struct.pack_into("<I", out, 16, len(head))
    for i in range(n):
        pos = 28 + len(head) + 16 * i
        struct.pack_into("<Q", out, pos, struct.unpack_from("<Q", out, pos)[0] + delta)
    path = folder / "edited.hsic"
    path.write_bytes(fix_crcs(out))
    # A valid edit (e.g. other metadata) is accepted; anything else is a clear HSIC error.
    assert outcome(path) in ("ok", "FormatError", "CodecError", "InputError")


@FUZZ
@given(payload=st.binary(max_size=300) | st.builds(lambda flag, n, rest: bytes([flag]) + struct.pack("<I", n) + rest,
                                                   st.sampled_from([0, 1, 2, 3, 255]),
                                                   st.integers(0, 2**32 - 1), st.binary(max_size=100)))
def test_crafted_tile_payloads_decode_or_raise_format_error(payload):
    # The CRC is right for any payload a hostile file carries: the mask parser and the entropy
    # decoder see these bytes as they are (compressai's rANS decoder once segfaulted on such input).
    import engine.pipeline

    codec = engine.pipeline.get_codec("cae1d", None, "cpu")
    from engine.format.container import Header

    header = Header.create(rows=5, cols=7, bands=6, dtype="int16", nodata=-32768.0, tile_rows=4,
                           tile_cols=4, codec="cae1d", quality=codec.quality, norm_offset=0.0, norm_scale=1000.0)
    try:
        out = decode_payload(payload, header, codec, 4, 3)
    except FormatError as e:
        assert "\n" not in str(e)
    else:
        assert out.shape == (6, 4, 3) and out.dtype == np.int16


@FUZZ
@given(tile=st.integers(0, 100), flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1,
                                                 max_size=6), cut=st.none() | st.integers(0, 10**6))
def test_damaged_residual_sections_with_valid_crcs(bounded_base, tile, flips, cut):
    # Payload CRCs fixed: the damage reaches the tile parser and the residual decoder.
    data, folder = bounded_base
    data = bytearray(data)
    head_len, n, index_pos = layout(data)
    off, length, _ = struct.unpack_from("<QII", data, index_pos + 16 * (tile % n))
    body = bytearray(data[off:off + length])
    for pos, bit in flips:
        body[pos % len(body)] ^= 1 << bit
    if cut is not None:
        del body[cut % len(body):]
    out = data[:off] + body + data[off + length:]
    struct.pack_into("<I", out, index_pos + 16 * (tile % n) + 8, len(body))
    for j in range(tile % n + 1, n):
        (o,) = struct.unpack_from("<Q", out, index_pos + 16 * j)
        struct.pack_into("<Q", out, index_pos + 16 * j, o + len(body) - length)
    path = folder / "damaged.hsic"
    path.write_bytes(fix_crcs(bytes(out), payloads=True))
    # Damage the CRC of the learned part does not see is decoded (the bound is then not promised);
    # anything else is a one-line HSIC error.
    result = outcome(path)
    assert result in ("ok", "FormatError", "CodecError")
    # Damage confined to the learned codec bytes either changes the learned reconstruction (its CRC in
    # the residual section says so: an error) or does not: then the bound still holds on every sample.
    codec_start, section_start = learned_bytes(bytes(data[off:off + length]))
    if cut is None and all(codec_start <= pos % len(body) < section_start for pos, _ in flips):
        dec = SceneDecoder(str(path), device="cpu")
        try:
            got = dec.read().astype(np.int64)  # the whole scene: outcome() reads one window
        except HSICError:
            return
        finally:
            dec.close()
        ref = bounded_cube().astype(np.int64)
        valid = ref != -32768
        assert np.abs(got - ref)[valid].max() <= 2 and (got[~valid] == -32768).all()


def learned_bytes(payload):
    """(start, end) of an error-bounded tile payload's learned codec bytes: flags, masks (u32 length +
    zlib), u32 length of the codec bytes, the codec bytes, then the residual section."""
    pos = 1
    for _ in range((payload[0] & 3).bit_length()):
        pos += 4 + struct.unpack_from("<I", payload, pos)[0]
    (n,) = struct.unpack_from("<I", payload, pos)
    return pos + 4, pos + 4 + n


@FUZZ
@given(data=st.binary(max_size=2000))
def test_arbitrary_bytes_are_not_a_hsic_file(base, data):
    path = base[1] / "random.hsic"
    path.write_bytes(data)
    assert outcome(path) == "FormatError"


# Crafted-header families (issue 17): headers a hostile author writes with valid CRCs. Each case must
# end in an HSIC error (or decode) fast, without opening odd files or allocating what the header says.
FAMILY = settings(FUZZ, max_examples=600)
ODD_PATHS = ["/proc/kmsg", "/proc/self/mem", "/dev/zero", "/dev/stdin", "/etc/passwd", "/", "", "x.pt",
             "../../x.pt", "/tmp", "\0", "a" * 5000]


def crafted_file(folder, name, payload=b"\0" * 40, trailer=b"", **fields):
    from engine.format.container import Header, write_hsic

    fields = {"rows": 3, "cols": 3, "bands": 2, "dtype": "int16", "tile_rows": 3, "tile_cols": 3,
              "codec": "cae1d", "quality": 2, **fields}
    header = Header.create(**fields)
    path = folder / name
    write_hsic(path, header, [payload] * header.n_tiles, trailer=trailer)
    return path


@FAMILY
@given(family=st.sampled_from(["size", "tile", "weights"]), rows=st.integers(1, 2**31 - 1),
       cols=st.integers(1, 2**31 - 1), bands=st.integers(1, 65535), ny=st.integers(1, 3), nx=st.integers(1, 3),
       path=st.sampled_from(ODD_PATHS) | st.text(max_size=30), digest=st.sampled_from(["", "ab" * 32]),
       payload=st.binary(max_size=64))
def test_crafted_header_families_fail_cleanly(base, family, rows, cols, bands, ny, nx, path, digest, payload):
    folder = base[1]
    fields = {}
    if family == "size":  # any declared size; tiles cover it in at most 3 x 3
        fields = dict(rows=rows, cols=cols, tile_rows=-(-rows // ny), tile_cols=-(-cols // nx),
                      bands=bands % 300 + 1)
    elif family == "tile":  # a small scene declaring tiles of any size
        fields = dict(rows=ny, cols=nx, tile_rows=rows, tile_cols=cols, bands=bands % 300 + 1)
    else:  # a weights file named by the header's author
        fields = dict(weights_sha256=digest, codec_options={"weights_file": os.path.basename(path) or "w.pt",
                                                            "weights_path": path})
    try:
        crafted = crafted_file(folder, "family.hsic", payload=payload, **fields)
    except (FormatError, InputError):
        return  # not even writable: the header validation refused it
    t0 = time.time()
    assert outcome(crafted) in ("ok", "FormatError", "CodecError", "InputError")
    assert time.time() - t0 < 5


@FAMILY
@given(levels=json_values | st.lists(st.fixed_dictionaries({"factor": st.integers(-5, 10**30) | st.floats(),
                                                            "rows": st.integers(-5, 10**6),
                                                            "cols": st.integers(-5, 10**6)}), max_size=4),
       nesting=st.integers(0, 3000), entries=st.binary(max_size=64))
def test_crafted_overview_sections_fail_cleanly(base, levels, nesting, entries):
    from engine.format.overview import MAGIC as OVR_MAGIC
    from engine.overviews import read_levels

    text = json.dumps({"levels": levels}).encode() if not nesting % 7 == 0 else \
        b'{"levels": ' + b"[" * nesting + b"]" * nesting + b"}"
    head = OVR_MAGIC + struct.pack("<I", len(text)) + text
    head += struct.pack("<I", zlib.crc32(head))
    trailer = head + entries + struct.pack("<I", zlib.crc32(entries))
    path = crafted_file(base[1], "ovr.hsic", trailer=trailer)
    with open_hsic(path) as r:
        try:
            read_levels(r)
        except FormatError as e:
            assert "\n" not in str(e)
