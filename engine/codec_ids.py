"""The one table of codecs: id, the number written into .hsic files, and the module that defines it.

The registry imports a codec's module from here, files store its number, listings come from here: adding
a codec is one row below and its module (which registers the class under the same id).

The number is part of the file format (bytes 12-13 of every .hsic file), so the table is append-only: a
row is NEVER renumbered or removed, even when its codec is retired (its module may then go; files of
it name a codec this version cannot decode), and a new codec takes the next unused number. Otherwise
old files would silently decode with the wrong codec.
"""

from __future__ import annotations

from typing import NamedTuple

from engine.errors import CodecError, FormatError

__all__ = ["CodecRow", "CODECS", "RESERVED_NUMBERS", "CODEC_NUMBERS", "codec_number", "codec_id", "codec_module"]


class CodecRow(NamedTuple):
    id: str
    number: int
    module: str


# Append-only. Never renumber, never remove, never reuse a number.
CODECS: tuple[CodecRow, ...] = (
    CodecRow("cae1d", 1, "engine.codecs.cae1d"),
    CodecRow("cae1d-deep", 2, "engine.codecs.cae1d"),
    CodecRow("sscnet", 3, "engine.codecs.spatial"),
    CodecRow("cae3d", 4, "engine.codecs.spatial"),
    CodecRow("bmshj2018-factorized", 5, "engine.codecs.spatial"),
    CodecRow("bmshj2018-hyperprior", 6, "engine.codecs.spatial"),
    CodecRow("s2cnet", 7, "engine.codecs.s2cnet"),
    CodecRow("hific-se", 8, "engine.codecs.hific"),
    CodecRow("hific-3d", 9, "engine.codecs.hific"),
    CodecRow("band-cluster", 10, "engine.codecs.band_cluster"),
    CodecRow("mdim-drf", 11, "engine.codecs.mdim"),
    CodecRow("klt", 15, "engine.codecs.klt"),
)

# Numbers once given to the benchmark's baselines (hsi_gdal/bench.py), which are not codecs and never
# appear in a .hsic file: reserved forever, so that no codec ever takes them.
RESERVED_NUMBERS: dict[str, int] = {"jpeg2000": 12, "pca-jpeg2000": 13, "deflate": 14}

# Lookups derived from the table (tests add a stand-in codec's id to CODEC_NUMBERS while they run).
CODEC_NUMBERS: dict[str, int] = {row.id: row.number for row in CODECS}
_MODULES: dict[str, str] = {row.id: row.module for row in CODECS}
# A duplicated number would make two codecs indistinguishable in a file; fail at import, not at decode.
_ALL_NUMBERS = [row.number for row in CODECS] + list(RESERVED_NUMBERS.values())
assert len(set(_ALL_NUMBERS)) == len(_ALL_NUMBERS), "duplicate or reserved codec number in CODECS"
assert len(CODEC_NUMBERS) == len(CODECS), "duplicate codec id in CODECS"
assert all(0 < n <= 0xFFFF for n in _ALL_NUMBERS), "codec numbers must fit a u16 and 0 is never used"


def codec_number(codec: str) -> int:
    """The number written into files for codec id ``codec``; CodecError if the id is unknown."""
    try:
        return CODEC_NUMBERS[codec]
    except (KeyError, TypeError):  # TypeError: an unhashable argument
        raise CodecError(f"unknown codec id {codec!r}; known: {', '.join(CODEC_NUMBERS)}") from None


def codec_id(number: int) -> str:
    """The codec id for a number read from a file; FormatError if no codec has that number."""
    for cid, n in CODEC_NUMBERS.items():
        if n == number:
            return cid
    raise FormatError(f"unknown codec number {number!r} in file (written by a newer HSIC, or corrupt)")


def codec_module(codec: str) -> str:
    """The module that defines (and registers) codec id ``codec``; CodecError if the id is unknown."""
    try:
        return _MODULES[codec]
    except (KeyError, TypeError):
        known = ", ".join(sorted(CODEC_NUMBERS))
        raise CodecError(f"unknown codec {codec!r}; known codecs: {known}") from None
