"""The compact header encoding (engine/format/header_codec.py): exact round trips, compactness, and
damaged bytes that end in FormatError."""

import lzma
import math
import zlib

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engine.errors import FormatError
from engine.format.container import Header
from engine.format.header_codec import PRESET_DICTIONARY as DICTIONARY
from engine.format.header_codec import decode_compact, encode_compact

PROPERTY = settings(max_examples=150, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

# Strings that look like numbers, and some that only almost do (their spelling must survive).
NUMERIC = st.sampled_from(["0", "1", "-1", "418.24", "418.240", "0.05", "-0.5", "-0", "-0.0", "007", "1e5",
                           "1E-3", "+3", ".5", "5.", "12345678901234567890.123456789", "nan", "1" * 60])
TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=12)
FLOATS = st.floats(allow_nan=True, allow_infinity=True, allow_subnormal=True)


@st.composite
def headers(draw):
    bands = draw(st.integers(1, 12) | st.sampled_from([224, 425, 1000]))
    big = bands > 12  # long headers: per-band values from a small pool, so examples stay fast

    def per_band(strategy):
        if big:
            pool = draw(st.lists(strategy, min_size=1, max_size=4))
            return [pool[(i * 7 + i // 3) % len(pool)] for i in range(bands)]
        return draw(st.lists(strategy, min_size=bands, max_size=bands))

    keys = draw(st.lists(TEXT, max_size=4, unique=True))
    metadata = []
    for i in range(bands):
        meta = {}
        for k in keys:
            if draw(st.booleans()) or big:
                meta[k] = draw(NUMERIC | TEXT | st.builds(lambda x: repr(x), FLOATS)) if not big else str(400 + i * 0.5)
        metadata.append(meta)
    style = draw(st.sampled_from(["template", "numbers", "free", "empty"]))
    if style == "template" and keys:
        key = keys[0]
        descriptions = [f"band {i + 1} ({m.get(key, '')} nm)" for i, m in enumerate(metadata)]
    elif style == "numbers":  # the same texts around numbers, some not plain decimals ("007", "1e5")
        number = NUMERIC if not big else st.sampled_from(["0.455400", "12", "3.5"])
        texts = draw(st.lists(TEXT, min_size=1, max_size=3))
        descriptions = ["".join(t + n for t, n in zip(texts, per_band_numbers)) + f" {i + 1}"
                        for i, per_band_numbers in enumerate(zip(*[per_band(number) for _ in texts]))]
    elif style == "free":
        descriptions = per_band(TEXT)
    else:
        descriptions = [""] * bands
    return Header.create(
        rows=draw(st.integers(1, 2**31 - 1)), cols=draw(st.integers(1, 2**31 - 1)), bands=bands,
        dtype=draw(st.sampled_from(["uint8", "int16", "uint16", "float32", "float64"])),
        tile_rows=draw(st.integers(1, 4096)), tile_cols=draw(st.integers(1, 4096)),
        codec=draw(st.sampled_from(["klt", "cae1d", "sscnet"])), quality=draw(st.integers(0, 20)),
        nodata=draw(st.none() | FLOATS), crs_wkt=draw(TEXT),
        geotransform=draw(st.none() | st.tuples(*[st.floats(allow_nan=False, allow_infinity=False)] * 6)),
        norm_offset=per_band(st.floats(allow_nan=False, allow_infinity=False)),
        norm_scale=per_band(st.floats(min_value=5e-324, allow_nan=False, allow_infinity=False)),
        band_scale=per_band(st.none() | FLOATS), band_offset=per_band(st.none() | FLOATS),
        band_descriptions=descriptions, band_metadata=metadata,
        metadata=draw(st.dictionaries(TEXT, TEXT, max_size=3)),
        codec_options=draw(st.dictionaries(TEXT, st.recursive(
            st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | TEXT,
            lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TEXT, inner, max_size=3),
            max_leaves=6), max_size=3)),
        max_abs_error=draw(st.none() | st.floats(min_value=0, allow_nan=False, allow_infinity=False)))


@PROPERTY
@given(header=headers())
def test_compact_round_trip_is_exact(header):
    data = header.to_compact_bytes()
    back = Header.from_compact_bytes(data)
    assert back == header  # the canonical JSON: every float's repr, NaN, -0.0, None, every string
    assert back.to_json_bytes() == header.to_json_bytes()
    for a, b in zip(back.band_scale + back.band_offset, header.band_scale + header.band_offset):
        assert a is b is None or (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) ==
                                                                        math.copysign(1, b))


def enmap_like(bands=224, descriptions=True):
    """An EnMAP-like header (VNIR and SWIR overlap, float32 wavelengths printed with 6 digits)."""
    wl = [418.24 + 5.6 * i + 0.003 * i * i for i in range(96)] + [902.0 + 10.1 * i for i in range(bands - 96)]
    fwhm = [6.99561 - 0.01 * i + 0.0001 * i * i for i in range(bands)]
    meta = [{"wavelength": f"{w:.6g}", "fwhm": f"{f:.6g}", "wavelength_units": "Nanometers", "bbl": "1"}
            for w, f in zip(wl, fwhm)]
    return Header.create(
        rows=128, cols=64, bands=bands, dtype="int16", tile_rows=128, tile_cols=64, codec="klt", quality=3,
        nodata=-32768.0, norm_offset=-496.0, norm_scale=6769.0, band_scale=(1e-4,) * bands,
        band_offset=(0.0,) * bands, band_metadata=meta,
        band_descriptions=[f"band {i + 1} ({m['wavelength']} Nanometers)" for i, m in enumerate(meta)]
        if descriptions else (), metadata={"AREA_OR_POINT": "Area"})


@pytest.mark.parametrize("bands", [1, 2, 224, 425])
def test_compact_is_smaller_than_deflated_json(bands):
    h = enmap_like(bands) if bands > 96 else enmap_like(96)
    old = len(zlib.compress(h.to_json_bytes(), 9))
    new = len(h.to_compact_bytes())
    assert Header.from_compact_bytes(h.to_compact_bytes()) == h
    assert new < 0.5 * old, (new, old)  # the per-band columns are what shrinks


def test_descriptions_template_and_its_fallback():
    h = enmap_like()
    with_template = len(h.to_compact_bytes())
    # One description off the pattern: stored as text, still exact, but costs more.
    descriptions = list(h.band_descriptions)
    descriptions[100] = "band 101 (odd one)"
    odd = Header.create(**{**_fields(h), "band_descriptions": descriptions})
    assert Header.from_compact_bytes(odd.to_compact_bytes()) == odd
    assert len(odd.to_compact_bytes()) > with_template + 100


def test_descriptions_with_numbers_of_their_own():
    # No metadata to refer to: the same texts around each band's numbers (as ENVI-style names have).
    h = Header.create(**{**_fields(enmap_like()), "band_metadata": (),
                         "band_descriptions": [f"band {i + 1} ({0.4554 + 0.0101 * i:.6f} Micrometers)"
                                               for i in range(224)]})
    assert Header.from_compact_bytes(h.to_compact_bytes()) == h
    assert len(h.to_compact_bytes()) < 0.25 * len(zlib.compress(h.to_json_bytes(), 9))


def _fields(h):
    return {name: getattr(h, name) for name in h.__dataclass_fields__}


def test_a_band_number_that_is_also_a_metadata_value():
    # bbl "1" equals band 1's number: the template must still name the band number, not bbl.
    h = enmap_like()
    assert h.band_metadata[0]["bbl"] == "1" and h.band_descriptions[0].startswith("band 1 ")
    assert Header.from_compact_bytes(h.to_compact_bytes()) == h
    assert len(h.to_compact_bytes()) < len(enmap_like(descriptions=False).to_compact_bytes()) + 60


def test_lone_surrogate_is_a_format_error():
    h = Header.create(rows=1, cols=1, bands=1, dtype="uint8", tile_rows=1, tile_cols=1, codec="klt", quality=0,
                      band_descriptions=["\ud800"])
    with pytest.raises(FormatError):
        h.to_compact_bytes()


@PROPERTY
@given(flips=st.lists(st.tuples(st.integers(0, 10**6), st.integers(0, 7)), min_size=1, max_size=6),
       cut=st.none() | st.integers(0, 10**6), method=st.sampled_from([0, 1, 2, 3]))
def test_damaged_compact_bytes_raise_format_error(flips, cut, method):
    # The header CRC catches this in a file; here the parser sees the damage itself (and must not hang,
    # allocate what the bytes claim, or raise anything but FormatError).
    h = enmap_like()
    raw = encode_compact(h.to_dict())
    body = decode_raw(raw)
    z = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DICTIONARY)
    packed = {0: body, 1: zlib.compress(body, 9, wbits=-15), 3: z.compress(body) + z.flush(),
              2: lzma.compress(body, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2, "preset": 6}])}
    data = bytearray([method]) + packed[method]
    for pos, bit in flips:
        data[pos % len(data)] ^= 1 << bit
    if cut is not None:
        del data[cut % len(data):]
    try:
        Header.from_compact_bytes(bytes(data))
    except FormatError as e:
        assert "\n" not in str(e)


def decode_raw(data):
    """The column bytes inside a compact header (its first byte says how they are compressed)."""
    if data[0] == 0:
        return data[1:]
    if data[0] in (1, 3):
        d = zlib.decompressobj(wbits=-15, **({"zdict": DICTIONARY} if data[0] == 3 else {}))
        return d.decompress(data[1:]) + d.flush()
    return lzma.decompress(data[1:], format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])


def test_preset_dictionary_is_frozen():
    # Files compressed with it (compression 3) decode only with these exact bytes, forever.
    import hashlib

    assert hashlib.sha256(DICTIONARY).hexdigest() == (
        "de6a54a1f84b4650a06c0d556150d54389f41852ff3cdeb457afb946d2a3eed8")


def test_every_compression_decodes():
    h = enmap_like()
    body = decode_raw(h.to_compact_bytes())
    z = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=DICTIONARY)
    for data in (b"\0" + body, b"\1" + zlib.compress(body, 9, wbits=-15), b"\3" + z.compress(body) + z.flush(),
                 b"\2" + lzma.compress(body, format=lzma.FORMAT_RAW, filters=[{"id": lzma.FILTER_LZMA2}])):
        assert Header.from_compact_bytes(data) == h


def test_expansion_is_bounded():
    # A constant column repeats one string per band: the decoder counts what it would build.
    h = Header.create(rows=1, cols=1, bands=65535, dtype="uint8", tile_rows=1, tile_cols=1, codec="klt",
                      quality=0, band_descriptions=["x" * 300] * 65535)
    data = h.to_compact_bytes()
    assert len(data) < 2000
    with pytest.raises(FormatError, match="limit"):
        decode_compact(data, 10**6)
    assert Header.from_dict(decode_compact(data, 10**8)) == h
