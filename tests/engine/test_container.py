"""The .hsic container: header JSON, byte layout, corruption detection and atomic writes."""

import json
import math
import os
import struct
import threading
import time
import tracemalloc
import zlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from engine.codec_ids import CODEC_NUMBERS, RESERVED_NUMBERS, codec_id, codec_number
from engine.errors import CancelledError, CodecError, FormatError, HSICIOError, InputError
from engine.format.container import MAGIC, Header, HsicReader, open_hsic, write_hsic

SHA = "ab" * 32


def make_header(**over):
    fields = dict(rows=5, cols=7, bands=3, dtype="uint16", tile_rows=2, tile_cols=4,
                  codec="cae1d", quality=2, nodata=0.0, weights_sha256=SHA,
                  norm_offset=(0.0, 1.5, -2.0), norm_scale=(1.0, 2.0, 0.25))
    fields.update(over)
    return Header.create(**fields)


def payloads(n, seed=0):
    # Distinct, varied lengths (including an empty payload) so that offsets matter.
    return [bytes((seed + i * 7 + k) % 256 for k in range((i * 13) % 29)) for i in range(n)]


@pytest.fixture
def small(tmp_path):
    """A small valid file: (path, header, payloads)."""
    header = make_header()
    tiles = payloads(header.n_tiles)
    path = tmp_path / "small.hsic"
    write_hsic(path, header, tiles)
    return path, header, tiles


def read_all(path):
    with open_hsic(path) as r:
        return r.header, [r.read_tile(i) for i in range(r.n_tiles)]


# -- layout helpers written from docs/format.md, independently of the implementation ----------

def parse(data):
    head_len, n = struct.unpack_from("<II", data, 16)
    return head_len, n, 28 + head_len  # index position


def fix_crcs(data):
    """Recompute header and index CRCs so that a deliberate edit is not caught as corruption."""
    data = bytearray(data)
    head_len, n, index_pos = parse(data)
    struct.pack_into("<I", data, 24 + head_len, zlib.crc32(data[: 24 + head_len]))
    index_end = index_pos + 16 * n
    struct.pack_into("<I", data, index_end, zlib.crc32(data[index_pos:index_end]))
    return bytes(data)


def with_header_json(data, new_json, encoding=0):
    """``data`` with its header replaced by ``new_json``, deflated (header encoding 0, as files were
    written before the compact header), or already encoded bytes with ``encoding`` 1 (compact)."""
    if encoding == 0:
        new_json = zlib.compress(new_json, 9)
    head_len, n, index_pos = parse(data)
    delta = len(new_json) - head_len
    out = bytearray(data[:24] + new_json + b"\0\0\0\0" + data[index_pos:])
    struct.pack_into("<H", out, 14, encoding)
    struct.pack_into("<I", out, 16, len(new_json))
    for i in range(n):  # tile offsets shift with the header
        pos = 28 + len(new_json) + 16 * i
        (off,) = struct.unpack_from("<Q", out, pos)
        struct.pack_into("<Q", out, pos, off + delta)
    return fix_crcs(out)


# -- codec ids --------------------------------------------------------------------------------

def test_codec_numbers_round_trip_and_are_stable():
    assert CODEC_NUMBERS["cae1d"] == 1 and CODEC_NUMBERS["mdim-drf"] == 11
    # The bench baselines' numbers stay reserved: no codec takes them, files never name them.
    assert RESERVED_NUMBERS == {"jpeg2000": 12, "pca-jpeg2000": 13, "deflate": 14}
    assert not set(RESERVED_NUMBERS.values()) & set(CODEC_NUMBERS.values())
    with pytest.raises(FormatError):
        codec_id(14)
    assert len(set(CODEC_NUMBERS.values())) == len(CODEC_NUMBERS)
    for cid, n in CODEC_NUMBERS.items():
        assert codec_number(cid) == n and codec_id(n) == cid
    with pytest.raises(CodecError):
        codec_number("nope")
    with pytest.raises(FormatError):
        codec_id(0)
    with pytest.raises(FormatError):
        codec_id(9999)


# -- header -----------------------------------------------------------------------------------

def test_header_defaults_and_n_tiles():
    h = Header.create(rows=5, cols=7, bands=2, dtype="float32", tile_rows=2, tile_cols=4,
                      codec="cae1d", quality=0)
    assert h.n_tiles == 3 * 2
    assert h.norm_offset == (0.0, 0.0) and h.norm_scale == (1.0, 1.0)
    assert h.band_descriptions == ("", "") and h.band_metadata == ({}, {})
    assert h.band_scale == (None, None) and h.band_offset == (None, None)
    assert h.nodata is None and h.geotransform is None and h.metadata == {} and h.codec_options == {}
    # The plain constructor fills per-band defaults too, and stores tuples, not lists.
    h2 = Header(rows=1, cols=1, bands=2, dtype="uint8", tile_rows=1, tile_cols=1, codec="sscnet",
                quality=0, norm_offset=[1, 2], norm_scale=[3, 4], geotransform=[0, 1, 0, 0, 0, -1])
    assert h2.norm_offset == (1.0, 2.0) and isinstance(h2.norm_offset[0], float)
    assert h2.geotransform == (0.0, 1.0, 0.0, 0.0, 0.0, -1.0) and h2.band_descriptions == ("", "")


def test_header_json_round_trip():
    h = make_header(
        nodata=math.nan, geotransform=None, crs_wkt='GEOGCS["WGS 84"]',
        band_descriptions=("λ 450 nm", "bånd ✓", "\"quoted\"\n"),
        band_metadata=({"wavelength": "450"}, {}, {"ключ": "значение"}),
        band_scale=(0.5, None, math.inf), band_offset=(None, -1.0, -math.inf),
        metadata={"sensor": "AVIRIS", "empty": ""}, codec_options={"k": [1, 2.5, {"x": None}]},
    )
    back = Header.from_json_bytes(h.to_json_bytes())
    assert back == h and hash(back) == hash(h)
    assert math.isnan(back.nodata)
    assert back.geotransform is None
    assert back.band_descriptions == h.band_descriptions
    assert back.band_scale[2] == math.inf and back.band_offset[2] == -math.inf
    assert back.band_metadata[2] == {"ключ": "значение"}
    # Strict JSON on disk: no NaN/Infinity literals.
    text = h.to_json_bytes().decode("utf-8")
    assert "NaN" not in text and "Infinity" not in text
    g = make_header(geotransform=(10.0, 0.5, 0.0, 20.0, 0.0, -0.5), nodata=-9999.0)
    assert Header.from_json_bytes(g.to_json_bytes()).geotransform == g.geotransform


def test_header_is_immutable_and_copies_dicts():
    meta = {"a": "1"}
    h = make_header(metadata=meta)
    meta["a"] = "changed"
    assert h.metadata == {"a": "1"}
    with pytest.raises(AttributeError):
        h.rows = 3


@pytest.mark.parametrize("field,value", [
    ("rows", 0), ("rows", -1), ("rows", 2**31), ("cols", 1.5), ("bands", 65536), ("bands", True),
    ("dtype", "complex64"), ("dtype", "int64"), ("tile_rows", 0), ("tile_cols", "4"),
    ("codec", "unknown-codec"), ("quality", -1), ("weights_sha256", "xyz"),
    ("weights_sha256", "AB" * 32), ("norm_offset", (0.0, 1.0)), ("norm_offset", (0, math.nan, 0)),
    ("norm_scale", (1.0, 0.0, 1.0)), ("norm_scale", (1.0, -1.0, 1.0)),
    ("norm_scale", (1.0, math.inf, 1.0)), ("geotransform", (0, 1, 0, 0, 0)),
    ("geotransform", (0, 1, 0, 0, 0, math.nan)), ("band_descriptions", ("a", "b")),
    ("band_descriptions", ("a", "b", 3)), ("band_metadata", ({}, {}, {"k": 1})),
    ("band_scale", (1.0, "x", None)), ("metadata", {"k": 2}), ("metadata", ["k"]),
    ("codec_options", {"f": math.nan}), ("codec_options", {"o": object()}), ("nodata", "0"),
    ("crs_wkt", None),
])
def test_header_rejects_bad_values(field, value):
    with pytest.raises(FormatError, match=field):
        Header(**{**dict(rows=5, cols=7, bands=3, dtype="uint16", tile_rows=2, tile_cols=4,
                         codec="cae1d", quality=2, norm_offset=(0, 0, 0), norm_scale=(1, 1, 1)),
                  field: value})


@pytest.mark.parametrize("text", [
    b"\xff\xfe", b"[]", b"{", b'{"rows": NaN}', b"null",
    b'{"rows": 1, "rows": 2}',  # duplicate key
])
def test_header_from_json_rejects_malformed(text):
    with pytest.raises(FormatError):
        Header.from_json_bytes(text)


def test_header_from_json_strict_fields():
    good = make_header().to_dict()

    def enc(d):
        return json.dumps(d).encode()

    assert Header.from_json_bytes(enc({**good, "added_in_1_1": 5})) == make_header()  # additive
    missing = dict(good)
    del missing["norm_scale"]
    for bad in (missing, {**good, "nodata": "NaN"}, {**good, "rows": 5.0},
                {**good, "band_scale": [1, "nan?", None]}):
        with pytest.raises(FormatError):
            Header.from_json_bytes(enc(bad))


# -- round trip and layout --------------------------------------------------------------------

def test_file_round_trip(small):
    path, header, tiles = small
    with open_hsic(path) as r:
        assert r.header == header and r.path == str(path)
        assert r.n_tiles == header.n_tiles == len(tiles)
        assert r.file_size == os.path.getsize(path)
        assert r.tile_lengths == tuple(len(t) for t in tiles)
        assert [r.read_tile(i) for i in range(r.n_tiles)] == tiles
        for bad in (-1, r.n_tiles, True, 1.0):
            with pytest.raises(InputError):
                r.read_tile(bad)
    assert not os.path.exists(str(path) + ".partial")


def test_layout_matches_spec(small):
    path, header, tiles = small
    data = path.read_bytes()
    assert data[:8] == MAGIC
    major, minor, number, encoding, head_len, n = struct.unpack_from("<HHHHII", data, 8)
    assert (major, minor, number, encoding) == (1, 0, 1, 1) and n == len(tiles)  # 1: compact header
    assert Header.from_compact_bytes(data[24:24 + head_len]) == header
    assert struct.unpack_from("<I", data, 24 + head_len)[0] == zlib.crc32(data[:24 + head_len])
    index_pos = 28 + head_len
    pos = index_pos + 16 * n + 4
    for i, t in enumerate(tiles):
        off, length, crc = struct.unpack_from("<QII", data, index_pos + 16 * i)
        assert (off, length, crc) == (pos, len(t), zlib.crc32(t))
        pos += length
    assert pos == len(data)
    assert fix_crcs(data) == data


def test_write_returns_size_and_accepts_generators_and_bytearrays(tmp_path):
    header = make_header(rows=1, cols=1, tile_rows=1, tile_cols=1)
    path = tmp_path / "one.hsic"
    size = write_hsic(str(path), header, (bytearray(b"x" * k) for k in [3]))
    assert size == os.path.getsize(path)
    assert read_all(path)[1] == [b"xxx"]


# -- corruption -------------------------------------------------------------------------------

def test_every_truncation_raises_format_error(small, tmp_path):
    data = small[0].read_bytes()
    cut = tmp_path / "cut.hsic"
    for n in range(len(data)):
        cut.write_bytes(data[:n])
        with pytest.raises(FormatError):
            read_all(cut)


def test_every_byte_flip_is_detected(small, tmp_path):
    data = small[0].read_bytes()
    bad = tmp_path / "bad.hsic"
    for pos in range(len(data)):
        for mask in (0x01, 0xFF):
            flipped = bytearray(data)
            flipped[pos] ^= mask
            bad.write_bytes(flipped)
            with pytest.raises(FormatError):
                read_all(bad)


def test_payload_flip_is_reported_by_read_tile_only(small, tmp_path):
    path, header, tiles = small
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x10  # last byte of the last tile's payload
    path.write_bytes(data)
    with open_hsic(path) as r:  # opening does not read payloads
        assert r.read_tile(0) == tiles[0]
        with pytest.raises(FormatError, match=f"tile {r.n_tiles - 1}"):
            r.read_tile(r.n_tiles - 1)


def test_foreign_and_wrong_magic(tmp_path):
    p = tmp_path / "x.hsic"
    for content in (b"GIF89a" + bytes(100), b"\x89PNG\r\n\x1a\n" + bytes(100), b"hello"):
        p.write_bytes(content)
        with pytest.raises(FormatError, match="not a .hsic file"):
            open_hsic(p)


def test_text_mode_mangled_magic(small, tmp_path):
    data = small[0].read_bytes().replace(b"\r\n", b"\n", 1)
    p = tmp_path / "m.hsic"
    p.write_bytes(data)
    with pytest.raises(FormatError, match="not a .hsic file"):
        open_hsic(p)


def test_newer_major_refused_newer_minor_accepted(small, tmp_path):
    data = bytearray(small[0].read_bytes())
    p = tmp_path / "v.hsic"
    struct.pack_into("<H", data, 8, 2)
    p.write_bytes(fix_crcs(data))
    with pytest.raises(FormatError, match="newer HSIC"):
        open_hsic(p)
    struct.pack_into("<HH", data, 8, 1, 7)
    p.write_bytes(fix_crcs(data))
    assert read_all(p) == (small[1], small[2])


@pytest.mark.parametrize("offset,value", [(16, 0xFFFFFFFF), (16, 16 << 20), (20, 0xFFFFFFFF),
                                          (20, 0x0FFFFFFF)])
def test_lying_sizes_fail_fast_without_allocating(small, tmp_path, offset, value):
    data = bytearray(small[0].read_bytes())
    struct.pack_into("<I", data, offset, value)
    p = tmp_path / "lie.hsic"
    p.write_bytes(data)
    tracemalloc.start()
    t0 = time.perf_counter()
    try:
        with pytest.raises(FormatError):
            open_hsic(p)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert time.perf_counter() - t0 < 1.0
    assert peak < 1 << 20


def test_lying_tile_count_with_good_crc(small, tmp_path):
    data = bytearray(small[0].read_bytes())
    struct.pack_into("<I", data, 20, small[1].n_tiles - 1)  # shorter index, CRCs recomputed
    p = tmp_path / "n.hsic"
    p.write_bytes(fix_crcs(data))
    with pytest.raises(FormatError):
        open_hsic(p)


def test_codec_number_must_agree(small, tmp_path):
    data = bytearray(small[0].read_bytes())
    struct.pack_into("<H", data, 12, codec_number("sscnet"))
    p = tmp_path / "c.hsic"
    p.write_bytes(fix_crcs(data))
    with pytest.raises(FormatError, match="codec"):
        open_hsic(p)
    struct.pack_into("<H", data, 12, 60000)
    p.write_bytes(fix_crcs(data))
    with pytest.raises(FormatError):
        open_hsic(p)


def test_unknown_header_encoding_refused(small, tmp_path):
    data = bytearray(small[0].read_bytes())
    for encoding in (0, 2, 65535):  # 0: the compact bytes are not deflated JSON
        struct.pack_into("<H", data, 14, encoding)
        p = tmp_path / "r.hsic"
        p.write_bytes(fix_crcs(data))
        with pytest.raises(FormatError, match="header"):
            open_hsic(p)


def test_json_header_files_still_read(small, tmp_path):
    # Every file written before the compact header has encoding 0 and deflated JSON: read forever.
    path, header, tiles = small
    p = tmp_path / "old.hsic"
    p.write_bytes(with_header_json(path.read_bytes(), header.to_json_bytes()))
    assert struct.unpack_from("<H", p.read_bytes(), 14)[0] == 0
    assert read_all(p) == (header, tiles)
    p.write_bytes(with_header_json(p.read_bytes(), header.to_compact_bytes(), encoding=1))
    assert p.read_bytes() == path.read_bytes() and read_all(p) == (header, tiles)


@pytest.mark.parametrize("edit", ["overlap", "before_index", "past_end", "descending"])
def test_bad_tile_offsets_with_good_crc(small, tmp_path, edit):
    data = bytearray(small[0].read_bytes())
    head_len, n, index_pos = parse(data)

    def entry(i):
        return list(struct.unpack_from("<QII", data, index_pos + 16 * i))

    def put(i, e):
        struct.pack_into("<QII", data, index_pos + 16 * i, *e)

    e1, e2 = entry(1), entry(2)
    if edit == "overlap":
        e2[0] -= 1
        put(2, e2)
    elif edit == "before_index":
        e0 = entry(0)
        e0[0] = index_pos
        put(0, e0)
    elif edit == "past_end":
        e = entry(n - 1)
        e[1] += 1
        put(n - 1, e)
    else:
        put(1, e2)
        put(2, e1)
    p = tmp_path / "o.hsic"
    p.write_bytes(fix_crcs(data))
    with pytest.raises(FormatError, match="tile"):
        open_hsic(p)


def test_tile_count_must_match_header(small, tmp_path):
    # A consistent file whose header claims a different grid than the index holds.
    data = small[0].read_bytes()
    other = make_header(rows=50).to_json_bytes()
    p = tmp_path / "g.hsic"
    p.write_bytes(with_header_json(data, other))
    with pytest.raises(FormatError, match="tile count"):
        open_hsic(p)
    # Sanity: the same helper with the original header yields a valid file.
    p.write_bytes(with_header_json(data, small[1].to_json_bytes()))
    assert read_all(p)[1] == small[2]


def test_invalid_header_json_with_good_crc(small, tmp_path):
    data = small[0].read_bytes()
    p = tmp_path / "j.hsic"
    for body in (b"{not json", b'{"rows": NaN}', make_header().to_json_bytes().replace(b'"cae1d"', b'"cae9"')):
        p.write_bytes(with_header_json(data, body))
        with pytest.raises(FormatError):
            open_hsic(p)


# -- OS errors --------------------------------------------------------------------------------

def test_missing_file_is_io_error(tmp_path):
    p = tmp_path / "absent.hsic"
    with pytest.raises(HSICIOError, match="absent.hsic") as info:
        open_hsic(p)
    assert isinstance(info.value, OSError)
    assert isinstance(info.value.__cause__, FileNotFoundError)


def test_directory_is_io_error(tmp_path):
    with pytest.raises(HSICIOError):
        open_hsic(tmp_path)


def test_write_into_missing_folder_is_io_error(tmp_path):
    target = tmp_path / "no" / "such" / "out.hsic"
    header = make_header()
    with pytest.raises(HSICIOError, match="out.hsic") as info:
        write_hsic(target, header, payloads(header.n_tiles))
    assert isinstance(info.value.__cause__, OSError)


def test_producer_os_error_is_not_rewrapped(tmp_path):
    def tiles():
        yield b"a"
        raise PermissionError("source unreadable")

    with pytest.raises(PermissionError, match="source unreadable") as info:
        write_hsic(tmp_path / "o.hsic", make_header(), tiles())
    assert not isinstance(info.value, HSICIOError)
    assert os.listdir(tmp_path) == []


def test_closed_reader(small):
    r = open_hsic(small[0])
    r.close()
    r.close()
    with pytest.raises(InputError):
        r.read_tile(0)


# -- atomic writing ---------------------------------------------------------------------------

@pytest.mark.parametrize("exc", [RuntimeError("boom"), CancelledError("cancelled"), KeyboardInterrupt()])
def test_failed_write_leaves_nothing(tmp_path, exc):
    header = make_header()
    target = tmp_path / "out.hsic"

    def tiles():
        yield b"first"
        yield b"second"
        raise exc

    with pytest.raises(type(exc)):
        write_hsic(target, header, tiles())
    assert os.listdir(tmp_path) == []


def test_failed_overwrite_keeps_old_file(small):
    path, header, tiles = small
    before = path.read_bytes()

    def bad():
        yield b"x"
        raise CancelledError("stop")

    with pytest.raises(CancelledError):
        write_hsic(path, header, bad())
    assert path.read_bytes() == before
    assert sorted(os.listdir(path.parent)) == [path.name]


def test_stale_partial_is_replaced(tmp_path):
    target = tmp_path / "out.hsic"
    stale = tmp_path / "out.hsic.partial"
    stale.write_bytes(b"garbage from a crashed run" * 1000)
    header = make_header()
    tiles = payloads(header.n_tiles, seed=3)
    write_hsic(target, header, tiles)
    assert not stale.exists()
    assert read_all(target) == (header, tiles)


@pytest.mark.parametrize("count_delta", [-1, +1, -6])
def test_wrong_tile_count_leaves_nothing(tmp_path, count_delta):
    header = make_header()
    target = tmp_path / "out.hsic"
    with pytest.raises(InputError, match="tiles"):
        write_hsic(target, header, payloads(header.n_tiles + count_delta))
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("bad", ["text", 3, None, [1, 2]])
def test_non_bytes_tile_leaves_nothing(tmp_path, bad):
    header = make_header()
    tiles = payloads(header.n_tiles)
    tiles[2] = bad
    with pytest.raises(InputError, match="tile 2"):
        write_hsic(tmp_path / "out.hsic", header, tiles)
    assert os.listdir(tmp_path) == []


def test_too_many_tiles_stops_consuming(tmp_path):
    header = make_header()
    consumed = []

    def endless():
        i = 0
        while True:
            consumed.append(i)
            yield b"t"
            i += 1

    with pytest.raises(InputError):
        write_hsic(tmp_path / "out.hsic", header, endless())
    assert len(consumed) == header.n_tiles + 1
    assert os.listdir(tmp_path) == []


# -- threads ----------------------------------------------------------------------------------

def test_concurrent_read_tile(tmp_path):
    header = make_header(rows=64, cols=64, tile_rows=4, tile_cols=4)
    tiles = [os.urandom(100 + (i * 37) % 900) for i in range(header.n_tiles)]
    path = tmp_path / "many.hsic"
    write_hsic(path, header, tiles)
    with HsicReader(path) as r:
        barrier = threading.Barrier(8)

        def work(k):
            barrier.wait()
            for j in range(400):
                i = (k * 131 + j * 17) % r.n_tiles
                if r.read_tile(i) != tiles[i]:
                    return False
            return True

        with ThreadPoolExecutor(8) as pool:
            assert all(pool.map(work, range(8)))


# -- write limits and files that shrink under the reader -------------------------------------------

def test_header_over_the_size_limit_is_refused_and_leaves_nothing(tmp_path, monkeypatch):
    import engine.format.container

    header = make_header(metadata={"notes": "x" * 5000})
    monkeypatch.setattr(engine.format.container, "MAX_HEADER_BYTES", len(header.to_json_bytes()) - 1)
    with pytest.raises(InputError, match="exceeds the"):
        write_hsic(tmp_path / "big.hsic", header, payloads(header.n_tiles))
    assert os.listdir(tmp_path) == []
    monkeypatch.setattr(engine.format.container, "MAX_HEADER_BYTES", len(header.to_json_bytes()))
    write_hsic(tmp_path / "big.hsic", header, payloads(header.n_tiles))  # exactly at the limit: written
    assert read_all(tmp_path / "big.hsic")[0] == header


def test_more_tiles_than_the_index_holds_is_refused_before_writing(tmp_path):
    header = make_header(rows=70000, cols=70000, tile_rows=1, tile_cols=1)  # 4.9e9 tiles > 2^32 - 1
    assert header.n_tiles > 2**32 - 1
    with pytest.raises(InputError, match="use larger tiles"):
        write_hsic(tmp_path / "many.hsic", header, iter(()))
    assert os.listdir(tmp_path) == []


def test_tile_over_4_gib_is_refused_before_it_is_written(tmp_path):
    import numpy as np

    header = make_header()
    # A 4 GiB + 1 byte buffer that takes no memory (every element is the same byte).
    huge = np.lib.stride_tricks.as_strided(np.zeros(1, np.uint8), shape=(2**32 + 1,), strides=(0,))
    huge.flags.writeable = False
    with pytest.raises(InputError, match="exceeds 4 GiB"):
        write_hsic(tmp_path / "huge.hsic", header, [b"a", memoryview(huge)])
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("part", ["header", "index"])
def test_file_shrinking_while_it_is_opened_is_a_format_error(small, monkeypatch, part):
    path, _, _ = small
    head_len = struct.unpack_from("<I", path.read_bytes(), 16)[0]
    keep = 30 if part == "header" else 28 + head_len + 4 + 5  # 5 bytes into the index
    real_pread = os.pread
    calls = []

    def pread_then_truncate(fd, size, offset):
        data = real_pread(fd, size, offset)
        if not calls:  # another process truncates the file right after the reader's first read
            os.truncate(path, keep)
        calls.append(offset)
        return data

    monkeypatch.setattr(os, "pread", pread_then_truncate)
    with pytest.raises(FormatError, match="file shrank while reading"):
        open_hsic(path)


def test_file_shrinking_after_it_was_opened_is_a_format_error(small):
    path, header, tiles = small
    with open_hsic(path) as r:
        assert r.read_tile(0) == tiles[0]
        os.truncate(path, os.path.getsize(path) - 3)
        with pytest.raises(FormatError, match=f"tile {header.n_tiles - 1} is truncated .file shrank"):
            r.read_tile(header.n_tiles - 1)
