"""The compact header encoding (header encoding 1, docs/format.md#compact-header): the header's JSON
object with its per-band lists stored as typed columns, then LZMA2 or deflate (with or without a preset
dictionary), whichever is smallest.

Why: a header is mostly per-band metadata (wavelength, fwhm, descriptions such as "band 12 (512.3
Nanometers)", scale, offset); as deflated JSON it was about 8 % of a 224-band file at 0.25 bpppc. As
columns the same facts are small integers (a decimal ``418.24`` is the pair 41824, -2, and neighbouring
bands differ little), and descriptions that follow a template of the band number and the band's metadata
are stored as that template. Everything round-trips exactly: every float, the spelling of every
decimal string, NaN/inf/None, unicode; what has no pattern is stored as plain text.

The encoder works on :meth:`engine.format.container.Header.to_dict` and the decoder gives that dict
back; the container validates it like header JSON. Layout of the bytes before compression (all
integers LEB128 varints, ``s`` signed ones zigzagged, strings a varint length and UTF-8):

- the JSON (sorted keys, no spaces) of every field except the per-band columns below;
- ``norm_offset``, ``norm_scale``, ``band_scale``, ``band_offset``: a float column each;
- ``band_metadata``: key count, then per key (sorted): the key, a presence flag (0 every band has it, 1 a
  bitmap of ``ceil(bands/8)`` bytes follows, LSB first), the string column of its present values;
- ``band_descriptions``: u8 0 and a string column; or u8 1 and a template: part count, per part a tag
  (0 literal text then the text, 1 the band number from 1, 2+k the value of metadata key k); or u8 2
  and the same texts around decimal numbers in every band: the count p of numbers, the p + 1 texts, and
  p string columns, the j-th numbers of all bands.

A float column is an integer sequence of kinds (0 finite, 1 None, 2 NaN, 3 inf, 4 -inf, 5 -0.0) and a
decimal column of the finite values, each written as the shortest decimal that reads back as the same
float (Python's repr). A string column is u8 0 then one string for all bands, u8 1 then a decimal
column (every value is a plain decimal such as ``-12``, ``0.50``), or u8 2 then the strings. A decimal
column holds the pairs (m, e) meaning m·10^e: the integer sequence of e, then u8 1 and the sequence of
m·10^(e − min e) (so that neighbours are comparable) or u8 0 and the sequence of m. An integer sequence
is u8 d (0, 1 or 2) and the zigzag varints of its d-th differences (the first d values as they are),
or u8 3 and one zigzag varint, the value of every element.
"""

from __future__ import annotations

import json
import lzma
import math
import re
import zlib
from decimal import Decimal
from typing import Any

from engine.errors import FormatError

__all__ = ["PER_BAND_FIELDS", "PRESET_DICTIONARY", "encode_compact", "decode_compact", "loads_strict"]

PER_BAND_FIELDS = ("norm_offset", "norm_scale", "band_scale", "band_offset", "band_metadata",
                   "band_descriptions")
_FLOAT_FIELDS = PER_BAND_FIELDS[:4]

# How the column bytes are stored (first byte of the header): whichever is smallest is written.
_STORED, _DEFLATE, _LZMA2, _DEFLATE_DICTIONARY = 0, 1, 2, 3
# The preset dictionary of _DEFLATE_DICTIONARY, frozen forever (files depend on every byte; a test checks
# its SHA-256): a header's JSON skeleton with the WKT GDAL writes for WGS 84 / UTM zone 1N, so that the
# field names and a UTM or WGS 84 CRS cost a few bytes instead of ~300.
PRESET_DICTIONARY = (
    b'{"bands":0,"codec":"klt","codec_options":{},"cols":0,"crs_wkt":"PROJCS[\\"WGS 84 / UTM zone 1N\\",'
    b'GEOGCS[\\"WGS 84\\",DATUM[\\"WGS_1984\\",SPHEROID[\\"WGS 84\\",6378137,298.257223563,AUTHORITY[\\"EPSG\\'
    b'",\\"7030\\"]],AUTHORITY[\\"EPSG\\",\\"6326\\"]],PRIMEM[\\"Greenwich\\",0,AUTHORITY[\\"EPSG\\",\\"8901\\"]],'
    b'UNIT[\\"degree\\",0.0174532925199433,AUTHORITY[\\"EPSG\\",\\"9122\\"]],AUTHORITY[\\"EPSG\\",\\"4326\\"]],P'
    b'ROJECTION[\\"Transverse_Mercator\\"],PARAMETER[\\"latitude_of_origin\\",0],PARAMETER[\\"central_merid'
    b'ian\\",-177],PARAMETER[\\"scale_factor\\",0.9996],PARAMETER[\\"false_easting\\",500000],PARAMETER[\\"f'
    b'alse_northing\\",0],UNIT[\\"metre\\",1,AUTHORITY[\\"EPSG\\",\\"9001\\"]],AXIS[\\"Easting\\",EAST],AXIS[\\"'
    b'Northing\\",NORTH],AUTHORITY[\\"EPSG\\",\\"32601\\"]]","dtype":"int16","geotransform":[0.0,30.0,0.0,0'
    b'.0,0.0,-30.0],"max_abs_error":null,"metadata":{"AREA_OR_POINT":"Area"},"nodata":null,"quality":3'
    b',"rows":0,"tile_cols":128,"tile_rows":128,"weights_sha256":""}'
)
# Raw LZMA2 has no header, so the decoder must be told the filter; the dictionary bounds the decoder's
# memory (1 MiB: far above any header's column bytes, and a longer one only loses some matches).
_LZMA_FILTERS = [{"id": lzma.FILTER_LZMA2, "preset": 9 | lzma.PRESET_EXTREME, "dict_size": 1 << 20}]
_LZMA_DECODE_FILTERS = [{"id": lzma.FILTER_LZMA2, "dict_size": 1 << 20}]

_KINDS = {None: 1, "nan": 2, "inf": 3, "-inf": 4}
_KIND_VALUES = {1: None, 2: "nan", 3: "inf", 4: "-inf", 5: -0.0}
_DECIMAL = re.compile(r"-?(?:0|[1-9][0-9]*)(?:\.[0-9]+)?")
_MAX_DECIMAL_CHARS = 40  # longer numeric strings are stored as text: they are not metadata numbers
_MAX_EXPONENT = 400  # |e| of any float's shortest decimal is below 330
_MAX_ALIGN = 30  # decimal places two values of one column may differ by and still be aligned
_MAX_VARINT_BYTES = 64
_NUMBER = re.compile(r"([0-9]+(?:\.[0-9]+)?)")  # a number inside a description (its sign stays text)
_CONSTANT = 3  # an integer sequence whose values are all one value: stored once


# ---------------------------------------------------------------------------------------------
# Encoding
# ---------------------------------------------------------------------------------------------

def _uvarint(out: bytearray, n: int) -> None:
    while True:
        byte = n & 0x7F
        n >>= 7
        if n:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return


def _svarint(out: bytearray, n: int) -> None:
    _uvarint(out, 2 * n if n >= 0 else -2 * n - 1)


def _text(out: bytearray, s: str) -> None:
    data = s.encode("utf-8")
    _uvarint(out, len(data))
    out += data


def _varint_size(n: int) -> int:
    z = 2 * n if n >= 0 else -2 * n - 1
    return max(1, -(-z.bit_length() // 7))


def _differences(values: list[int], order: int) -> list[int]:
    out = list(values)
    for d in range(order):
        out = out[:d + 1] + [out[i] - out[i - 1] for i in range(d + 1, len(out))]
    return out


def _int_sequence(out: bytearray, values: list[int]) -> None:
    if len(values) > 1 and len(set(values)) == 1:
        out.append(_CONSTANT)
        _svarint(out, values[0])
        return
    # The order whose varints are fewest; ties go to the lower order.
    best = min(range(3), key=lambda d: (sum(map(_varint_size, _differences(values, d))), d))
    out.append(best)
    for v in _differences(values, best):
        _svarint(out, v)


def _decimal_pair(text: str) -> tuple[int, int]:
    """(m, e) with m·10^e the value of a decimal ``text`` (no exponent needed in it)."""
    sign, digits, exponent = Decimal(text).as_tuple()
    m = int("".join(map(str, digits)))
    return (-m if sign else m), exponent


def _decimal_column(out: bytearray, pairs: list[tuple[int, int]]) -> None:
    exps = [e for _, e in pairs]
    _int_sequence(out, exps)
    low = min(exps, default=0)
    aligned = not pairs or max(exps) - low <= _MAX_ALIGN
    out.append(int(aligned))
    _int_sequence(out, [m * 10 ** (e - low) if aligned else m for m, e in pairs])


def _decimal_text(m: int, e: int) -> str:
    """The decimal string of m·10^e (e <= 0) with exactly -e decimal places."""
    digits = str(abs(m)).rjust(-e + 1, "0")
    text = digits if e == 0 else f"{digits[:e]}.{digits[e:]}"
    return "-" + text if m < 0 else text


def _as_decimal(s: str) -> tuple[int, int] | None:
    """(m, e) that spell ``s`` again exactly, or None if ``s`` is not a plain decimal (e.g. "-0", "1e5")."""
    if len(s) > _MAX_DECIMAL_CHARS or not _DECIMAL.fullmatch(s):
        return None
    m, e = _decimal_pair(s)
    return (m, e) if _decimal_text(m, e) == s else None


def _float_column(out: bytearray, values: list) -> None:
    kinds, pairs = [], []
    for v in values:
        if isinstance(v, float) and v == 0 and math.copysign(1.0, v) < 0:
            kinds.append(5)
        elif isinstance(v, (int, float)) and not isinstance(v, bool):
            kinds.append(0)
            pairs.append(_decimal_pair(repr(float(v))))
        else:
            kinds.append(_KINDS[v])
    _int_sequence(out, kinds)
    _decimal_column(out, pairs)


def _string_column(out: bytearray, values: list[str]) -> None:
    if len(set(values)) == 1 and len(values) > 1:
        out.append(0)
        _text(out, values[0])
        return
    pairs = [_as_decimal(s) for s in values]
    if all(p is not None for p in pairs):
        out.append(1)
        _decimal_column(out, pairs)
        return
    out.append(2)
    for s in values:
        _text(out, s)


def _find_template(descriptions: list[str], metadata: list[dict[str, str]], keys: list[str]) -> list | None:
    """Parts (text, or slot 1 for the band number, 2+k for key k's value) that spell every description.

    A slot is a candidate only if its value is in every band's description; the template is guessed
    from the first band by replacing candidate values in its description, longest first (then with
    the band number first, in case a number like "12" also occurs inside a longer value), and kept
    only if it spells every band's description exactly.
    """
    def value(slot: int, band: int) -> str:
        return str(band + 1) if slot == 1 else metadata[band].get(keys[slot - 2], "")

    slots = [s for s in range(1, len(keys) + 2)
             if all(value(s, i) and value(s, i) in d for i, d in enumerate(descriptions))]
    by_length = sorted(slots, key=lambda s: -len(value(s, 0)))
    for order in (by_length, [1] + [s for s in by_length if s != 1]):
        parts: list = [descriptions[0]]
        for slot in order:
            v = value(slot, 0)
            split: list = []
            for part in parts:
                if isinstance(part, str):
                    for j, piece in enumerate(part.split(v)):
                        split += [slot, piece] if j else [piece]
                else:
                    split.append(part)
            parts = [p for p in split if p != ""]
        if any(isinstance(p, int) for p in parts) and all(
                _spell(parts, i, metadata[i], keys) == d for i, d in enumerate(descriptions)):
            return parts
    return None


def _find_skeleton(descriptions: list[str]) -> tuple[list[str], list[list[str]]] | None:
    """(texts, number columns) when every description is the same texts around decimal numbers (e.g.
    "band 7 (0.4554 Micrometers)"): texts[0] number[0] texts[1] ... texts[-1]; None otherwise."""
    split = [_NUMBER.split(d) for d in descriptions]
    texts = split[0][0::2]
    if len(texts) < 2 or any(p[0::2] != texts for p in split):
        return None
    numbers = [[p[j] for p in split] for j in range(1, len(split[0]), 2)]
    if any(_as_decimal(n) is None for column in numbers for n in column):
        return None  # e.g. "007": not a plain decimal, kept as text
    return texts, numbers


def _spell(parts: list, band: int, meta: dict[str, str], keys: list[str]) -> str | None:
    out = []
    for p in parts:
        if isinstance(p, str):
            out.append(p)
        elif p == 1:
            out.append(str(band + 1))
        elif keys[p - 2] in meta:
            out.append(meta[keys[p - 2]])
        else:
            return None
    return "".join(out)


def _columns(obj: dict[str, Any]) -> bytes:
    out = bytearray()
    rest = {k: v for k, v in obj.items() if k not in PER_BAND_FIELDS}
    _text(out, json.dumps(rest, allow_nan=False, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    for name in _FLOAT_FIELDS:
        _float_column(out, list(obj[name]))

    metadata = obj["band_metadata"]
    keys = sorted({k for m in metadata for k in m})
    _uvarint(out, len(keys))
    for key in keys:
        _text(out, key)
        present = [key in m for m in metadata]
        if all(present):
            out.append(0)
        else:
            out.append(1)
            bits = bytearray(-(-len(present) // 8))
            for i, p in enumerate(present):
                bits[i // 8] |= p << (i % 8)
            out += bits
        _string_column(out, [m[key] for m in metadata if key in m])

    descriptions = list(obj["band_descriptions"])
    template = _find_template(descriptions, metadata, keys) if len(descriptions) > 1 else None
    skeleton = _find_skeleton(descriptions) if template is None and len(descriptions) > 1 else None
    if template is not None:
        out.append(1)
        _uvarint(out, len(template))
        for part in template:
            if isinstance(part, str):
                _uvarint(out, 0)
                _text(out, part)
            else:
                _uvarint(out, part)
    elif skeleton is not None:
        texts, numbers = skeleton
        out.append(2)
        _uvarint(out, len(numbers))
        for t in texts:
            _text(out, t)
        for column in numbers:
            _string_column(out, column)
    else:
        out.append(0)
        _string_column(out, descriptions)
    return bytes(out)


def encode_compact(obj: dict[str, Any]) -> bytes:
    """The compact header bytes of a header's dict (``Header.to_dict()``), at their smallest."""
    try:
        raw = _columns(obj)
    except UnicodeEncodeError as e:  # a lone surrogate in a string
        raise FormatError(f"header cannot be stored as UTF-8: {e}") from e
    candidates = [bytes([_STORED]) + raw,
                  bytes([_DEFLATE]) + zlib.compress(raw, 9, wbits=-15),
                  bytes([_LZMA2]) + lzma.compress(raw, format=lzma.FORMAT_RAW, filters=_LZMA_FILTERS)]
    z = zlib.compressobj(9, zlib.DEFLATED, -15, zdict=PRESET_DICTIONARY)
    candidates.append(bytes([_DEFLATE_DICTIONARY]) + z.compress(raw) + z.flush())
    return min(candidates, key=len)  # on a tie the first in this order


# ---------------------------------------------------------------------------------------------
# Decoding
# ---------------------------------------------------------------------------------------------

def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not JSON")


def _no_duplicate_keys(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key in JSON object")
    return obj


def loads_strict(text: str) -> Any:
    """JSON as header JSON must be: no NaN/Infinity literals, no duplicate keys (ValueError otherwise)."""
    return json.loads(text, parse_constant=_reject_constant, object_pairs_hook=_no_duplicate_keys)


class _Reader:
    """Reads the column bytes; every overrun or impossible value raises FormatError."""

    def __init__(self, data: bytes, budget: int):
        self.data = data
        self.pos = 0
        self.budget = budget  # characters of strings left: expansion must not outgrow a header's limit

    def byte(self) -> int:
        if self.pos >= len(self.data):
            raise FormatError("compact header ends early (corrupt)")
        self.pos += 1
        return self.data[self.pos - 1]

    def uvarint(self) -> int:
        n = shift = 0
        for _ in range(_MAX_VARINT_BYTES):
            b = self.byte()
            n |= (b & 0x7F) << shift
            if not b & 0x80:
                return n
            shift += 7
        raise FormatError("compact header holds an over-long number (corrupt)")

    def svarint(self) -> int:
        z = self.uvarint()
        return z >> 1 if not z & 1 else -(z >> 1) - 1

    def count(self, limit: int, what: str) -> int:
        n = self.uvarint()
        if n > limit:
            raise FormatError(f"compact header: {what} {n} exceeds {limit} (corrupt)")
        return n

    def spend(self, chars: int) -> None:
        self.budget -= chars
        if self.budget < 0:
            raise FormatError("compact header expands past the header size limit (corrupt)")

    def text(self) -> str:
        n = self.count(len(self.data) - self.pos, "string length")
        raw = self.data[self.pos:self.pos + n]
        self.pos += n
        try:
            s = raw.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"compact header holds invalid UTF-8 ({e})") from None
        self.spend(len(s))
        return s

    def int_sequence(self, n: int) -> list[int]:
        order = self.byte()
        if order == _CONSTANT:
            return [self.svarint()] * n
        if order > 2:
            raise FormatError(f"compact header: unknown sequence order {order} (corrupt)")
        values = [self.svarint() for _ in range(n)]
        for d in range(order, 0, -1):  # undo the differences, innermost last
            for i in range(d, n):
                values[i] += values[i - 1]
        return values

    def decimal_column(self, n: int) -> list[tuple[int, int]]:
        exps = self.int_sequence(n)
        if any(abs(e) > _MAX_EXPONENT for e in exps):
            raise FormatError("compact header: decimal exponent out of range (corrupt)")
        aligned = self.byte()
        if aligned > 1:
            raise FormatError(f"compact header: unknown alignment flag {aligned} (corrupt)")
        low = min(exps, default=0)
        if aligned and n and max(exps) - low > _MAX_ALIGN:
            raise FormatError("compact header: decimal column spans too many places (corrupt)")
        ms = self.int_sequence(n)
        pairs = []
        for m, e in zip(ms, exps):
            if aligned:
                m, r = divmod(m, 10 ** (e - low))
                if r:
                    raise FormatError("compact header: misaligned decimal (corrupt)")
            pairs.append((m, e))
        return pairs

    def float_column(self, n: int) -> list:
        kinds = self.int_sequence(n)
        if any(not 0 <= k <= 5 for k in kinds):
            raise FormatError("compact header: unknown float kind (corrupt)")
        finite = iter(self.decimal_column(kinds.count(0)))
        out = []
        for k in kinds:
            if k == 0:
                m, e = next(finite)
                out.append(float(f"{m}e{e}"))
            else:
                out.append(_KIND_VALUES[k])
        return out

    def string_column(self, n: int) -> list[str]:
        mode = self.byte()
        if mode == 0:
            s = self.text()
            self.spend(len(s) * max(n - 1, 0))
            return [s] * n
        if mode == 1:
            pairs = self.decimal_column(n)
            if any(e > 0 for _, e in pairs):
                raise FormatError("compact header: decimal string with a positive exponent (corrupt)")
            out = [_decimal_text(m, e) for m, e in pairs]
            self.spend(sum(map(len, out)))
            return out
        if mode == 2:
            return [self.text() for _ in range(n)]
        raise FormatError(f"compact header: unknown string column mode {mode} (corrupt)")


def _inflate(data: bytes, max_bytes: int) -> bytes:
    if not data:
        raise FormatError("compact header is empty (corrupt)")
    method, body = data[0], data[1:]
    try:
        if method == _STORED:
            raw, done = body, True
        elif method in (_DEFLATE, _DEFLATE_DICTIONARY):
            d = zlib.decompressobj(wbits=-15) if method == _DEFLATE else \
                zlib.decompressobj(wbits=-15, zdict=PRESET_DICTIONARY)
            raw = d.decompress(body, max_bytes + 1)
            done = d.eof and not d.unused_data and not d.unconsumed_tail
        elif method == _LZMA2:
            d = lzma.LZMADecompressor(format=lzma.FORMAT_RAW, filters=_LZMA_DECODE_FILTERS)
            raw = d.decompress(body, max_bytes + 1)
            done = d.eof and not d.unused_data
        else:
            raise FormatError(f"compact header: unknown compression {method} (corrupt)")
    except (zlib.error, lzma.LZMAError) as e:
        raise FormatError(f"compact header does not decompress ({e})") from None
    if len(raw) > max_bytes or not done:
        raise FormatError(f"compact header is corrupt or larger than {max_bytes} bytes")
    return raw


def decode_compact(data: bytes, max_bytes: int) -> dict[str, Any]:
    """The header dict stored by :func:`encode_compact`, its strings at most ``max_bytes`` characters in all.

    The dict is only parsed here, not validated: the container validates it as it does header JSON.
    """
    r = _Reader(_inflate(data, max_bytes), max_bytes)
    try:
        rest = loads_strict(r.text())
    except (ValueError, RecursionError) as e:
        raise FormatError(f"compact header's JSON is not valid: {e}") from None
    if not isinstance(rest, dict):
        raise FormatError("compact header's JSON is not an object")
    bands = rest.get("bands")
    if not isinstance(bands, int) or isinstance(bands, bool) or not 1 <= bands <= 65535:
        raise FormatError(f"compact header field 'bands' must be an integer in [1, 65535], got {bands!r}")
    obj = dict(rest)
    for name in _FLOAT_FIELDS:
        obj[name] = r.float_column(bands)

    metadata: list[dict[str, str]] = [{} for _ in range(bands)]
    keys: list[str] = []
    for _ in range(r.count(len(r.data), "metadata key count")):
        key = r.text()
        if key in keys:
            raise FormatError("compact header: duplicate band metadata key (corrupt)")
        keys.append(key)
        flag = r.byte()
        if flag == 0:
            present = list(range(bands))
        elif flag == 1:
            bits = [r.byte() for _ in range(-(-bands // 8))]
            present = [i for i in range(bands) if bits[i // 8] >> (i % 8) & 1]
        else:
            raise FormatError(f"compact header: unknown presence flag {flag} (corrupt)")
        for i, value in zip(present, r.string_column(len(present))):
            metadata[i][key] = value
    obj["band_metadata"] = metadata

    mode = r.byte()
    if mode == 0:
        obj["band_descriptions"] = r.string_column(bands)
    elif mode == 1:
        parts: list = []
        for _ in range(r.count(len(r.data), "template part count")):
            tag = r.uvarint()
            if tag == 0:
                parts.append(r.text())
            elif tag - 2 < len(keys):
                parts.append(tag)
            else:
                raise FormatError(f"compact header: template slot {tag} names no metadata key (corrupt)")
        descriptions = []
        for i in range(bands):
            s = _spell(parts, i, metadata[i], keys)
            if s is None:
                raise FormatError(f"compact header: band {i + 1} lacks a value its description needs (corrupt)")
            r.spend(len(s))
            descriptions.append(s)
        obj["band_descriptions"] = descriptions
    elif mode == 2:
        count = r.count(len(r.data), "description number count")
        texts = [r.text() for _ in range(count + 1)]
        r.spend(sum(map(len, texts)) * (bands - 1))
        numbers = [r.string_column(bands) for _ in range(count)]
        descriptions = []
        for i in range(bands):
            pieces = [texts[0]]
            for j in range(count):
                pieces += [numbers[j][i], texts[j + 1]]
            descriptions.append("".join(pieces))
        obj["band_descriptions"] = descriptions
    else:
        raise FormatError(f"compact header: unknown description mode {mode} (corrupt)")
    if r.pos != len(r.data):
        raise FormatError("compact header has trailing bytes (corrupt)")
    return obj
