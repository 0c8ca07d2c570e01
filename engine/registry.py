"""The one registry of codecs.

A codec class registers itself (:func:`register`) with a frozen :class:`~engine.codecs.base.CodecInfo`
under an id of the codec table (:mod:`engine.codec_ids`); ``get_codec``, ``codec_class``, ``get_info``
and ``list_codecs`` are the only ways in. Importing this module is cheap (no torch): a codec's module is
imported, as the table names it, the first time the codec is asked for.
"""

from __future__ import annotations

import importlib

from engine.codec_ids import CODEC_NUMBERS, codec_module
from engine.codecs.base import CodecInfo, TileCodec
from engine.errors import CodecError

DEFAULT_CODEC = "klt"
# What `hsic train` and hsic:train train unless told otherwise: klt's context model is trained by
# scripts/train_klt_context.py, not by the codec training loop.
DEFAULT_TRAIN_CODEC = "cae1d"

_REGISTRY: dict[str, type[TileCodec]] = {}


def register(cls: type[TileCodec]) -> type[TileCodec]:
    """Class decorator: register a codec class under ``cls.info.id`` (an id of the table, used once)."""
    info: CodecInfo = cls.info
    if info.id not in CODEC_NUMBERS:
        raise CodecError(f"codec id {info.id!r} is not in the codec table (engine/codec_ids.py)")
    if info.id in _REGISTRY:
        raise CodecError(f"codec id {info.id!r} is registered twice")
    if info.default_quality not in info.qualities:
        raise CodecError(f"codec {info.id!r}: default quality not among its qualities")
    _REGISTRY[info.id] = cls
    return cls


def _load(codec_id: str) -> None:
    if isinstance(codec_id, str) and codec_id in _REGISTRY:
        return
    module = codec_module(codec_id)  # CodecError for an id not in the table
    if codec_id not in _REGISTRY:
        importlib.import_module(module)
        if codec_id not in _REGISTRY:
            raise CodecError(f"module {module} does not register codec {codec_id!r}")


def _load_all() -> None:
    for codec_id in CODEC_NUMBERS:
        _load(codec_id)


def codec_class(codec_id: str) -> type[TileCodec]:
    """The registered class for ``codec_id`` (CodecError naming the known ids otherwise)."""
    _load(codec_id)
    return _REGISTRY[codec_id]


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
    """Infos of all codecs of the table, sorted by id."""
    _load_all()
    return [_REGISTRY[k].info for k in sorted(CODEC_NUMBERS)]
