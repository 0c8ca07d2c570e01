"""The bytes of one tile payload (docs/format.md, "Tile payload")::

    u8 flags (bit 0: a no-data mask follows; bit 1: a NaN mask follows; bit 2: error-bounded tile)
    [u32 length, zlib(packbits(invalid samples))]   only when flag bit 0 is set
    [u32 length, zlib(packbits(NaN samples))]       only when flag bit 1 is set (float sources)
    codec bytes                                     when flag bit 2 is clear; when it is set:
    u32 length, codec bytes, residual section (engine.format.residual)

Bit 2 is set exactly in the tiles of an error-bounded file (header ``max_abs_error``, format 1.2).
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from engine.errors import FormatError

RESIDUAL_FLAG = 4
_U32 = struct.Struct("<I")


def pack_tile(masks: list[np.ndarray], coded: bytes, section: bytes | None = None) -> bytes:
    """A payload from its masks ([] , [invalid] or [invalid, NaN], bool arrays), the codec's bytes and,
    for an error-bounded tile, its residual section."""
    parts = [bytes([(1 << len(masks)) - 1 | (RESIDUAL_FLAG if section is not None else 0)])]
    for m in masks:
        packed = zlib.compress(np.packbits(m).tobytes(), 9)
        parts += [_U32.pack(len(packed)), packed]
    if section is None:
        return b"".join([*parts, coded])
    return b"".join([*parts, _U32.pack(len(coded)), coded, section])


def _inflate_mask(data: bytes, size: int) -> bytes:
    """Exactly ``size`` bytes inflated from ``data``; a bounded inflate, so no deflate bomb."""
    d = zlib.decompressobj()
    out = d.decompress(data, size + 1)
    if len(out) != size or not d.eof or d.unused_data or d.unconsumed_tail:
        raise FormatError(f"tile mask has the wrong size (expected {size} bytes)")
    return out


def unpack_tile(payload: bytes, shape: tuple[int, int, int],
                bounded: bool) -> tuple[list[np.ndarray], bytes, bytes | None]:
    """(masks, codec bytes, residual section or None) of a payload of a tile of ``shape`` (bands, h, w);
    ``bounded``: whether the file is error-bounded. FormatError on anything malformed."""
    bands, h, w = shape
    masks = []
    try:
        flags = payload[0]
        if flags & ~RESIDUAL_FLAG not in (0, 1, 3) or bool(flags & RESIDUAL_FLAG) != bounded:
            raise FormatError(f"unknown tile flags {flags} (error-bounded file: {bounded})")
        pos = 1
        for _ in range((flags & ~RESIDUAL_FLAG).bit_length()):
            (n,) = _U32.unpack_from(payload, pos)
            if pos + 4 + n > len(payload):
                raise FormatError("tile mask runs past the end of the payload")
            bits = np.frombuffer(_inflate_mask(payload[pos + 4: pos + 4 + n], -(-bands * h * w // 8)),
                                 dtype=np.uint8)
            masks.append(np.unpackbits(bits, count=bands * h * w).astype(bool).reshape(bands, h, w))
            pos += 4 + n
        end = len(payload)
        if bounded:
            (n,) = _U32.unpack_from(payload, pos)
            pos += 4
            end = pos + n
            if end > len(payload):
                raise FormatError("tile's codec bytes run past the end of the payload")
    except (IndexError, struct.error, zlib.error) as e:
        raise FormatError(f"corrupt tile payload: {e}") from e
    return masks, payload[pos:end], (payload[end:] if bounded else None)
