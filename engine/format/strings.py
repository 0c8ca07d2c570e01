"""How learned codecs pack their tile bytes: rANS strings with the latent shape, level counts, tile means.

These are the codec bytes of a tile payload (engine.format.tile); which strings a codec writes is in
its module's docstring (docs/format.md lists them per codec).
"""

from __future__ import annotations

import struct

import numpy as np

from engine.errors import FormatError


def pack_strings(shape: tuple[int, ...], groups: list[list[bytes]]) -> bytes:
    """Serialise a latent shape and groups of rANS strings (e.g. [y strings, z strings]) into one payload.

    Layout: u8 ndim, u16 x ndim shape, u8 group count, then per group u32 count and, per string, u32 length
    and the bytes. The lengths cost a few bytes per tile; they are counted in the rate like everything else.
    """
    parts = [struct.pack("<B", len(shape)), struct.pack(f"<{len(shape)}H", *shape), struct.pack("<B", len(groups))]
    for group in groups:
        parts.append(struct.pack("<I", len(group)))
        for s in group:
            parts += [struct.pack("<I", len(s)), s]
    return b"".join(parts)


def unpack_strings(data: bytes, max_strings: int) -> tuple[tuple[int, ...], list[list[bytes]]]:
    """Inverse of :func:`pack_strings`; FormatError on anything malformed (never reads past ``data``)."""
    try:
        (ndim,) = struct.unpack_from("<B", data, 0)
        shape = struct.unpack_from(f"<{ndim}H", data, 1)
        pos = 1 + 2 * ndim
        (ngroups,) = struct.unpack_from("<B", data, pos)
        pos += 1
        groups = []
        for _ in range(ngroups):
            (count,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if count > max_strings:
                raise FormatError(f"tile holds {count} strings, at most {max_strings} expected")
            group = []
            for _ in range(count):
                (n,) = struct.unpack_from("<I", data, pos)
                pos += 4
                if pos + n > len(data):
                    raise FormatError("tile string runs past the end of the tile")
                group.append(data[pos:pos + n])
                pos += n
            groups.append(group)
    except struct.error as e:
        raise FormatError(f"corrupt tile: {e}") from None
    if pos != len(data):
        raise FormatError("trailing bytes after the tile's strings")
    return tuple(shape), groups


def pack_counts(counts: list[int]) -> bytes:
    """Counts as u16 each (e.g. a histogram of importance levels)."""
    return struct.pack(f"<{len(counts)}H", *counts)


def unpack_counts(data: bytes, n: int) -> list[int]:
    """Inverse of :func:`pack_counts` for ``n`` counts; FormatError unless ``data`` holds exactly that."""
    if len(data) != 2 * n:
        raise FormatError(f"{len(data)} bytes of counts, {2 * n} expected")
    return list(struct.unpack(f"<{n}H", data))


def pack_means(means: np.ndarray) -> list[bytes]:
    """Per-tile means (N, B) as one float16 string per tile."""
    return [row.astype("<f2").tobytes() for row in means]


def unpack_means(strings: list[bytes], n: int) -> np.ndarray:
    """(N, B) float32 means from :func:`pack_means` strings, each read to its first ``n`` bytes (a string
    may carry zero padding, see engine.codecs.learned.guarded_string)."""
    return np.stack([np.frombuffer(bytes(s)[:n], "<f2") for s in strings]).astype(np.float32)
