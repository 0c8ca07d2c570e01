"""Codec id strings <-> the small integers written into .hsic files.

The number is part of the file format (bytes 12-13 of every .hsic file), so this table is
append-only: an entry is NEVER renumbered or removed, even when its codec is retired, and a new
codec takes the next unused number. Otherwise old files would silently decode with the wrong codec.
"""

from __future__ import annotations

from engine.errors import CodecError, FormatError

__all__ = ["CODEC_NUMBERS", "codec_number", "codec_id"]

# Append-only. Never renumber, never remove, never reuse a number.
CODEC_NUMBERS: dict[str, int] = {
    "cae1d": 1,
    "cae1d-deep": 2,
    "sscnet": 3,
    "cae3d": 4,
    "bmshj2018-factorized": 5,
    "bmshj2018-hyperprior": 6,
    "s2cnet": 7,
    "hific-se": 8,
    "hific-3d": 9,
    "band-cluster": 10,
    "mdim-drf": 11,
    "jpeg2000": 12,
    "pca-jpeg2000": 13,
    "deflate": 14,
}

_CODEC_IDS: dict[int, str] = {number: cid for cid, number in CODEC_NUMBERS.items()}
# A duplicated number would make two codecs indistinguishable in a file; fail at import, not at decode.
assert len(_CODEC_IDS) == len(CODEC_NUMBERS), "duplicate codec number in CODEC_NUMBERS"
assert all(0 < n <= 0xFFFF for n in _CODEC_IDS), "codec numbers must fit a u16 and 0 is never used"


def codec_number(codec: str) -> int:
    """The number written into files for codec id ``codec``; CodecError if the id is unknown."""
    try:
        return CODEC_NUMBERS[codec]
    except (KeyError, TypeError):  # TypeError: an unhashable argument
        raise CodecError(f"unknown codec id {codec!r}; known: {', '.join(CODEC_NUMBERS)}") from None


def codec_id(number: int) -> str:
    """The codec id for a number read from a file; FormatError if no codec has that number."""
    try:
        return _CODEC_IDS[number]
    except (KeyError, TypeError):
        raise FormatError(
            f"unknown codec number {number!r} in file (written by a newer HSIC, or corrupt)"
        ) from None
