"""The bytes of the overview section, stored in the container's trailer (format 1.1, docs/format.md)::

    8        magic b"HSICOVR1"
    4        u32 J, length of the JSON descriptor
    J        JSON {"levels": [{"factor": f, "rows": R, "cols": C}, ...]}, finest level first
    4        u32 CRC32 of the bytes above
    16 * M   per tile, levels in order, each row-major: u64 offset from the trailer start, u32 length,
             u32 CRC32 of the payload
    4        u32 CRC32 of the tile index
    ...      tile payloads (the same payload format as full-resolution tiles, engine.format.tile)
"""

from __future__ import annotations

import json
import struct
import zlib
from typing import Callable

from engine.errors import FormatError
from engine.format.container import HsicReader

MAGIC = b"HSICOVR1"
_U32 = struct.Struct("<I")
_ENTRY = struct.Struct("<QII")  # offset from the trailer start, length, CRC32
_MAX_DESCRIPTOR = 1 << 20

Entry = tuple[int, int, int]


def pack_section(levels: list[dict], payloads: list[bytes]) -> bytes:
    """The section for ``levels`` ({"factor", "rows", "cols"} each, finest first) and their tiles'
    payloads (levels in order, each row-major); b"" for no levels."""
    if not levels:
        return b""
    text = json.dumps({"levels": levels}, sort_keys=True, separators=(",", ":")).encode()
    head = MAGIC + _U32.pack(len(text)) + text
    head += _U32.pack(zlib.crc32(head))
    pos = len(head) + _ENTRY.size * len(payloads) + _U32.size
    index = bytearray()
    for p in payloads:
        index += _ENTRY.pack(pos, len(p), zlib.crc32(p))
        pos += len(p)
    return b"".join([head, index, _U32.pack(zlib.crc32(index)), *payloads])


def read_section(reader: HsicReader, tile_count: Callable[[int], int]) -> list[tuple[int, list[Entry]]]:
    """(factor, tile index entries) of each level in a file's trailer ([] without overviews), everything
    but the payloads checked; ``tile_count(factor)``: how many tiles a level of that factor has."""
    start, end = reader.trailer_range
    if end - start == 0:
        return []
    where = reader.path
    if end - start < len(MAGIC) + 2 * _U32.size:
        raise FormatError(f"{where}: overview section is truncated")
    head = reader.read_trailer(0, len(MAGIC) + _U32.size)
    if head[:len(MAGIC)] != MAGIC:
        raise FormatError(f"{where}: unknown data after the last tile (not an overview section)")
    (j,) = _U32.unpack_from(head, len(MAGIC))
    if j > min(_MAX_DESCRIPTOR, end - start):
        raise FormatError(f"{where}: overview descriptor length {j} is corrupt")
    text = reader.read_trailer(len(head), j + _U32.size)
    if zlib.crc32(text[:j], zlib.crc32(head)) != _U32.unpack_from(text, j)[0]:
        raise FormatError(f"{where}: overview descriptor CRC mismatch (corrupt file)")
    try:
        levels = json.loads(text[:j])["levels"]
        factors = [int(lv["factor"]) for lv in levels]
    except (ValueError, KeyError, TypeError, OverflowError, RecursionError) as e:  # e.g. 1e400, deep nesting
        raise FormatError(f"{where}: overview descriptor is not valid ({type(e).__name__})") from None
    if any(f < 2 for f in factors) or len(set(factors)) != len(factors):
        raise FormatError(f"{where}: overview factors {factors} are not valid")
    counts = [tile_count(f) for f in factors]
    index_pos = len(head) + j + _U32.size
    m = sum(counts)
    raw = reader.read_trailer(index_pos, m * _ENTRY.size + _U32.size)
    if zlib.crc32(raw[:-_U32.size]) != _U32.unpack_from(raw, m * _ENTRY.size)[0]:
        raise FormatError(f"{where}: overview index CRC mismatch (corrupt file)")
    entries = list(_ENTRY.iter_unpack(raw[:-_U32.size]))
    data_start = index_pos + len(raw)
    for offset, length, _ in entries:
        if offset < data_start or start + offset + length > end:
            raise FormatError(f"{where}: overview tile at [{offset}, {offset + length}) is out of place")
    out, k = [], 0
    for f, c in zip(factors, counts):
        out.append((f, entries[k:k + c]))
        k += c
    return out


def read_tile(reader: HsicReader, entry: Entry, what: str) -> bytes:
    """The payload an index entry points to, its CRC checked (``what`` names the tile in errors)."""
    offset, length, crc = entry
    data = reader.read_trailer(offset, length)
    if zlib.crc32(data) != crc:
        raise FormatError(f"{reader.path}: {what} CRC mismatch")
    return data
