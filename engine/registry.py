"""The one registry of codecs.

A codec class registers itself with a frozen :class:`CodecInfo` under a fixed id; ``get_codec`` and
``list_codecs`` are the only ways in. Importing this module is cheap (no torch): codec modules are
imported lazily, the first time the registry is consulted.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from engine.errors import CodecError

if TYPE_CHECKING:
    from engine.codecs.base import TileCodec

DEFAULT_CODEC = "cae1d"

# Modules that define codecs; each registers its classes on import.
_CODEC_MODULES = ("engine.codecs.cae1d", "engine.codecs.spatial", "engine.codecs.mdim",
                  "engine.codecs.band_cluster", "engine.codecs.s2cnet", "engine.codecs.hific")


@dataclass(frozen=True)
class CodecInfo:
    """Facts about a codec, kept in one place next to its class."""

    id: str
    title: str
    paper: str
    qualities: tuple[int, ...]
    default_quality: int
    # Weights file per quality, relative to engine/weights ("" for codecs without weights).
    weights: dict[int, str] = field(default_factory=dict)

    def check_quality(self, quality: int | None) -> int:
        """Return a valid quality (the default when None) or raise CodecError."""
        if quality is None:
            return self.default_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or quality not in self.qualities:
            raise CodecError(
                f"codec {self.id!r} has no quality {quality!r}; choose one of "
                f"{', '.join(map(str, self.qualities))}"
            )
        return quality


_REGISTRY: dict[str, type[TileCodec]] = {}
_loaded = False


def register(cls: type[TileCodec]) -> type[TileCodec]:
    """Class decorator: register a codec class under ``cls.info.id`` (an id may be used once)."""
    info = cls.info
    if info.id in _REGISTRY:
        raise CodecError(f"codec id {info.id!r} is registered twice")
    if info.default_quality not in info.qualities:
        raise CodecError(f"codec {info.id!r}: default quality not among its qualities")
    _REGISTRY[info.id] = cls
    return cls


def _load_all() -> None:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in _CODEC_MODULES:
            importlib.import_module(name)


def codec_class(codec_id: str) -> type[TileCodec]:
    """The registered class for ``codec_id`` (CodecError naming the known ids otherwise)."""
    _load_all()
    try:
        return _REGISTRY[codec_id]
    except (KeyError, TypeError):
        known = ", ".join(sorted(_REGISTRY))
        raise CodecError(f"unknown codec {codec_id!r}; known codecs: {known}") from None


def get_codec(codec_id: str, quality: int | None = None, device: str = "auto", weights=None) -> TileCodec:
    """A ready-to-use codec instance (weights loaded, entropy tables built).

    ``weights``: a user's weights file for this codec and quality instead of the installed one.
    """
    cls = codec_class(codec_id)
    if weights is None:  # codecs without weights need not accept the keyword
        return cls(cls.info.check_quality(quality), device=device)
    return cls(cls.info.check_quality(quality), device=device, weights=weights)


def get_info(codec_id: str) -> CodecInfo:
    return codec_class(codec_id).info


def list_codecs() -> list[CodecInfo]:
    """Infos of all registered codecs, sorted by id."""
    _load_all()
    return [_REGISTRY[k].info for k in sorted(_REGISTRY)]
