"""A tile's samples <-> its payload bytes: normalise, mask, code (and for error-bounded files the
residual), and back to source units and type.

The payload's byte layout is :mod:`engine.format.tile`'s. Invalid samples decode to the nodata value,
or to NaN where the NaN mask says so: both exactly. In an error-bounded file (header ``max_abs_error``)
the learned part is decoded on the CPU, by the encoder too (see :func:`residual_codec`), so that both
compute the same reconstruction; the residual section (engine/residual.py) checks that they did.
"""

from __future__ import annotations

import math

import numpy as np

from engine import residual
from engine.errors import FormatError, HSICError
from engine.format.container import Header
from engine.format.tile import pack_tile, unpack_tile
from engine.parallel import thread_map
from engine.normalise import fill_invalid, scaled, valid_mask
from engine.registry import get_codec
from engine.tiling import TileGrid, extract_tile


def _norm(header: Header) -> tuple[np.ndarray, np.ndarray]:
    """Per-band normalisation as (bands, 1, 1) arrays for broadcasting."""
    return (np.asarray(header.norm_offset, dtype=np.float64)[:, None, None],
            np.asarray(header.norm_scale, dtype=np.float64)[:, None, None])


def normalised(raw: np.ndarray, header: Header) -> tuple[np.ndarray, np.ndarray]:
    """A raw tile's normalised float32 samples (no-data filled) and its valid-sample mask."""
    valid = valid_mask(raw, header.nodata)
    x = scaled(raw, np.asarray(header.norm_offset, dtype=np.float64), np.asarray(header.norm_scale, dtype=np.float64))
    fill_invalid(x, valid)
    return x, valid


def _prepare(raw: np.ndarray, header: Header, codec):
    """A raw tile's normalised codec input, its valid-sample mask and the masks the payload stores."""
    x, valid = normalised(raw, header)
    if codec.pad_edge_tiles:  # spatial codecs see full tiles: edge tiles padded by replication
        x = extract_tile(x, TileGrid(raw.shape[1], raw.shape[2], header.tile_rows, header.tile_cols), 0)
    masks = []
    if not valid.all():
        masks.append(~valid)
        nan = np.isnan(raw) if raw.dtype.kind == "f" else None
        if nan is not None and nan.any() and not (header.nodata is not None and np.isnan(header.nodata)):
            masks.append(nan)
    return x, valid, masks


def encode_payloads(raws: list[np.ndarray], header: Header, codec, decoder=None) -> list[bytes]:
    """Payloads of several tiles (raw source samples, each (bands, h, w)) through one codec batch.

    ``decoder``: for an error-bounded header, the codec instance the decoder will use (a CPU one,
    :func:`residual_codec`); ``codec`` itself when None.
    """
    prepared = thread_map(lambda raw: _prepare(raw, header, codec), raws)
    coded = codec.encode_tiles([x for x, _, _ in prepared])
    if header.max_abs_error is None:
        return [pack_tile(masks, c) for (_, _, masks), c in zip(prepared, coded)]
    # The residual is taken against exactly what the decoder will reconstruct from these bytes.
    decoder = decoder or codec
    fulls = _codec_decode(decoder, [(c, _coded_shape(header, decoder, *raw.shape[1:]))
                                    for raw, c in zip(raws, coded)])
    out = []
    for raw, (_, valid, masks), c, full in zip(raws, prepared, coded, fulls):
        pred = _to_source(full, header, *raw.shape[1:], masks)
        nan = masks[1] if len(masks) == 2 else None
        section = residual.encode_section(raw, pred, valid, header.max_abs_error,
                                          lambda rec, valid=valid, nan=nan: finish(rec, header.nodata, valid, nan))
        out.append(pack_tile(masks, c, section))
    return out


def encode_payload(raw: np.ndarray, header: Header, codec, decoder=None) -> bytes:
    """One tile's payload from raw source samples (bands, h, w), h and w possibly cropped at the edge."""
    return encode_payloads([raw], header, codec, decoder)[0]


def residual_codec(coder):
    """The codec instance that decodes the learned part of error-bounded tiles: ``coder`` if it runs
    on the CPU, else a CPU instance of the same codec, quality and weights (GPU arithmetic differs)."""
    if getattr(coder, "torch_device", "cpu") == "cpu":
        return coder
    return get_codec(coder.info.id, coder.quality, "cpu", weights=coder.user_weights)


def to_dtype(x: np.ndarray, dtype: np.dtype, nodata: float | None, valid: np.ndarray | None,
              nan: np.ndarray | None = None) -> np.ndarray:
    """Cast decoded samples to the source type; a valid sample never takes the nodata value, invalid ones
    take nodata (or NaN where ``nan`` is set)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        r = np.rint(x)
        # = np.clip(r, min, max), in place (numpy's clip with Python bounds took as long as the rounding)
        np.maximum(r, info.min, out=r)
        np.minimum(r, info.max, out=r)
        out = r.astype(dtype)
    else:
        out = x.astype(dtype)
    finish(out, nodata, valid, nan)
    return out


def finish(out: np.ndarray, nodata: float | None, valid: np.ndarray | None, nan: np.ndarray | None) -> None:
    """In place: move valid samples off the nodata value, then restore invalid ones (nodata, or NaN)."""
    dtype = out.dtype
    if nodata is not None and not np.isnan(nodata):
        clash = out == nodata
        if clash.any():
            if dtype.kind in "iu":
                out[clash] = nodata + 1 if nodata < np.iinfo(dtype).max else nodata - 1
            else:
                out[clash] = np.nextafter(dtype.type(nodata), dtype.type(np.inf))
    if valid is not None and not valid.all():
        out[~valid] = nodata if nodata is not None else np.nan
    if nan is not None:
        out[nan] = np.nan


def _fits(value: float | None, dtype: np.dtype) -> bool:
    """Whether ``value`` is exactly representable in the integer type ``dtype``."""
    info = np.iinfo(dtype)
    return value is not None and math.isfinite(value) and value == int(value) and info.min <= value <= info.max


def _parse_payload(payload: bytes, header: Header, codec, h: int, w: int):
    """A tile payload's masks, codec bytes, the shape the codec coded and the residual section (None
    unless the header is error-bounded)."""
    masks, coded, section = unpack_tile(payload, (header.bands, h, w), header.max_abs_error is not None)
    dtype = np.dtype(header.dtype)
    if masks and dtype.kind in "iu" and not _fits(header.nodata, dtype):
        raise FormatError(f"tile has a no-data mask but nodata {header.nodata} is not a {dtype} value")
    if len(masks) == 2 and dtype.kind != "f":
        raise FormatError(f"tile has a NaN mask but the samples are {dtype}")
    return masks, coded, _coded_shape(header, codec, h, w), section


def _coded_shape(header: Header, codec, h: int, w: int) -> tuple[int, int, int]:
    """The shape a codec coded an h x w tile at: spatial codecs code edge tiles padded to the full tile."""
    return (header.bands, *((header.tile_rows, header.tile_cols) if codec.pad_edge_tiles else (h, w)))


def _codec_decode(codec, items: list[tuple[bytes, tuple[int, int, int]]], latent: bool = False) -> list:
    """codec.decode_tiles (or decode_latents) with a codec's parse failures turned into FormatError."""
    try:
        return codec.decode_latents(items) if latent else codec.decode_tiles(items)
    except (ValueError, RuntimeError, IndexError, OverflowError) as e:
        if isinstance(e, HSICError):
            raise
        # CRCs catch accidental corruption; this is a crafted or foreign payload the codec cannot parse.
        raise FormatError(f"corrupt tile payload: {type(e).__name__}: {e}") from e


def _to_source(full: np.ndarray, header: Header, h: int, w: int, masks: list[np.ndarray],
               bands: np.ndarray | None = None) -> np.ndarray:
    """A decoded (normalised) tile in source units and type, cropped to (bands, h, w), masks applied.

    ``bands``: the band indices ``full`` holds (all bands when None); the masks are taken for those."""
    offset, scale = _norm(header)
    if bands is not None:
        offset, scale, masks = offset[bands], scale[bands], [m[bands] for m in masks]
    x = full[:, :h, :w].astype(np.float64)
    x *= scale  # in place: the same arithmetic as x * scale + offset, without two temporaries
    x += offset
    return to_dtype(x, np.dtype(header.dtype), header.nodata, ~masks[0] if masks else None,
                     masks[1] if len(masks) == 2 else None)


class DecodedTile:
    """One decoded tile, kept as the codec's latent (:meth:`TileCodec.decode_latents`, e.g. the KLT
    components) and its masks; :meth:`bands` makes source samples of only the bands asked for. An
    error-bounded tile is kept finished (its residual needs every band)."""

    def __init__(self, header: Header, codec, h: int, w: int, latent=None, masks=(), full=None):
        self.header, self.codec, self.h, self.w = header, codec, h, w
        self.latent, self.masks, self.full = latent, list(masks), full
        parts = [full] if full is not None else [latent, *self.masks]
        self.nbytes = sum(getattr(p, "nbytes", 0) for p in parts)

    def bands(self, sel: np.ndarray | None = None) -> np.ndarray:
        """Source samples (len(sel), h, w) of bands ``sel`` (0-based; all when None)."""
        if self.full is not None:
            return self.full if sel is None else self.full[sel]
        if sel is None:
            return _to_source(self.codec.expand(self.latent, None), self.header, self.h, self.w, self.masks)
        sel = np.asarray(sel, dtype=np.int64)
        return _to_source(self.codec.expand(self.latent, sel), self.header, self.h, self.w, self.masks, sel)


def decode_tiles(items: list[tuple[bytes, int, int]], header: Header, codec) -> list[DecodedTile]:
    """Decode several (payload, h, w) through one codec batch, each kept as a :class:`DecodedTile`."""
    parsed = [_parse_payload(p, header, codec, h, w) for p, h, w in items]
    latents = _codec_decode(codec, [(data, shape) for _, data, shape, _ in parsed], latent=True)
    out = []
    for (masks, _, _, section), latent, (_, h, w) in zip(parsed, latents, items):
        tile = DecodedTile(header, codec, h, w, latent, masks)
        if section is not None:
            arr = tile.bands()
            valid = ~masks[0] if masks else np.ones(arr.shape, dtype=bool)
            nan = masks[1] if len(masks) == 2 else None
            arr = residual.decode_section(section, arr, valid, header.max_abs_error,
                                          lambda rec, valid=valid, nan=nan: finish(rec, header.nodata, valid, nan))
            tile = DecodedTile(header, codec, h, w, full=arr)
        out.append(tile)
    return out


def decode_payloads(items: list[tuple[bytes, int, int]], header: Header, codec) -> list[np.ndarray]:
    """Decode several (payload, h, w) through one codec batch to source units and type, each (bands, h, w)."""
    return [t.bands() for t in decode_tiles(items, header, codec)]


def decode_payload(payload: bytes, header: Header, codec, h: int, w: int) -> np.ndarray:
    """Decode one tile payload to source units and type, cropped to (bands, h, w)."""
    return decode_payloads([(payload, h, w)], header, codec)[0]
