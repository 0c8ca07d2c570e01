"""The bytes of the residual section of an error-bounded tile (after its codec bytes, engine.format.tile)::

    u32 CRC32 of the learned reconstruction P (source type, C order): the decoder's must match
    u32 n, zlib of per band: 3 x i16 prediction weights (x 2^-10), u8 model, u8 shift, i64 centre
    u32 n, rANS strings of the high parts (valid samples, band-major): one per group of whole bands
           of at least 2^20 samples (the last group may be smaller), each as u32 length + bytes
    u32 n, raw low bits (bands in order, per sample its ``shift`` low bits, LSB first)
    u32 count, u32 n, zlib of count u32 sample-index gaps and count exact samples (source type)

What the numbers mean is engine/residual.py's.
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from engine.errors import FormatError

PARAM = struct.Struct("<hhhBBq")  # per band: 3 prediction weights, model, shift, centre
_U32 = struct.Struct("<I")


def pack_strings(strings: list[bytes]) -> bytes:
    """rANS strings, each as u32 length + bytes."""
    return b"".join(_U32.pack(len(s)) + s for s in strings)


def unpack_strings(data: bytes, count: int) -> list[bytes]:
    """The ``count`` strings of :func:`pack_strings`; FormatError unless they fill ``data`` exactly
    (struct.error when ``data`` ends inside a length)."""
    out, pos = [], 0
    for _ in range(count):
        (size,) = _U32.unpack_from(data, pos)
        if pos + 4 + size > len(data):
            raise FormatError("residual string runs past the end of its part")
        out.append(data[pos + 4:pos + 4 + size])
        pos += 4 + size
    if pos != len(data):
        raise FormatError("trailing bytes after the residual strings")
    return out


def pack_low_bits(lows: list[tuple[np.ndarray, int]]) -> bytes:
    """The raw low bits: per (values as uint64, shift) with shift > 0, in order, each value's ``shift``
    low bits, LSB first; packed MSB first into bytes."""
    bits = [np.unpackbits(v.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")[:, :s].reshape(-1)
            for v, s in lows]
    return np.packbits(np.concatenate(bits)).tobytes() if bits else b""


def unpack_low_bits(data: bytes, counts: list[int], shifts: list[int]) -> list[np.ndarray | None]:
    """Per band, its ``counts[b]`` low parts (int64) of ``shifts[b]`` bits each (None where the shift is 0);
    FormatError unless ``data`` holds exactly that many bits."""
    total = sum(c * s for c, s in zip(counts, shifts))
    if len(data) != -(-total // 8):
        raise FormatError(f"residual low bits are {len(data)} bytes, expected {-(-total // 8)}")
    bits = np.unpackbits(np.frombuffer(data, dtype=np.uint8), count=total) if total else None
    out, pos = [], 0
    for c, s in zip(counts, shifts):
        if not s:
            out.append(None)
            continue
        full = np.zeros((c, 64), dtype=np.uint8)
        full[:, :s] = bits[pos:pos + c * s].reshape(c, s)
        pos += c * s
        out.append(np.packbits(full, axis=1, bitorder="little").view("<u8").reshape(c).view(np.int64))
    return out


def _inflate(data: bytes, size: int, what: str) -> bytes:
    """Exactly ``size`` bytes inflated from ``data`` (bounded: no deflate bomb)."""
    d = zlib.decompressobj()
    raw = d.decompress(data, size + 1)
    if len(raw) != size or not d.eof or d.unused_data or d.unconsumed_tail:
        raise FormatError(f"residual {what} have the wrong size")
    return raw


def _pack_exceptions(where: np.ndarray, values: np.ndarray) -> bytes:
    gaps = np.diff(where, prepend=0).astype("<u4")
    blob = zlib.compress(gaps.tobytes() + values.astype(values.dtype.newbyteorder("<")).tobytes(), 9)
    return struct.pack("<II", where.size, len(blob)) + blob


def _unpack_exceptions(data: bytes, pos: int, dtype: np.dtype, size: int) -> tuple[np.ndarray, np.ndarray, int]:
    count, n = struct.unpack_from("<II", data, pos)
    pos += 8
    if count > size or pos + n > len(data):
        raise FormatError("residual exceptions are larger than the tile")
    raw = _inflate(data[pos:pos + n], count * (4 + dtype.itemsize), "exceptions")
    where = np.cumsum(np.frombuffer(raw[:4 * count], dtype="<u4").astype(np.int64))
    if count and (where[-1] >= size or (count > 1 and np.any(np.diff(where) <= 0))):
        raise FormatError("residual exceptions point outside the tile")
    values = np.frombuffer(raw[4 * count:], dtype=dtype.newbyteorder("<")).astype(dtype)
    return where, values, pos + n


def pack_section(crc: int, params: list[tuple], strings: bytes, low_bits: bytes, where: np.ndarray,
                 values: np.ndarray) -> bytes:
    """The section from the reconstruction's CRC, per-band parameters (PARAM tuples), the packed rANS
    strings (:func:`pack_strings`), the packed low bits and the exceptions (ascending flat sample
    indices and their exact values)."""
    head = zlib.compress(b"".join(PARAM.pack(*p) for p in params), 9)
    return b"".join([_U32.pack(crc), _U32.pack(len(head)), head, _U32.pack(len(strings)), strings,
                     _U32.pack(len(low_bits)), low_bits, _pack_exceptions(where, values)])


def unpack_section(data: bytes, bands: int, dtype: np.dtype, size: int):
    """(crc, params, strings, low bits, where, values) of a section written by :func:`pack_section` for
    a tile of ``bands`` bands and ``size`` samples of ``dtype``; FormatError on anything malformed."""
    try:
        (crc,) = _U32.unpack_from(data, 0)
        pos = 4
        parts = []
        for _ in range(3):
            (n,) = _U32.unpack_from(data, pos)
            if pos + 4 + n > len(data):
                raise FormatError("residual section runs past the end of the tile")
            parts.append(data[pos + 4:pos + 4 + n])
            pos += 4 + n
        params = list(PARAM.iter_unpack(_inflate(parts[0], PARAM.size * bands, "band parameters")))
        where, values, pos = _unpack_exceptions(data, pos, dtype, size)
    except (struct.error, zlib.error) as err:
        raise FormatError(f"corrupt residual section: {err}") from None
    if pos != len(data):
        raise FormatError("trailing bytes after the residual section")
    return crc, params, parts[1], parts[2], where, values
