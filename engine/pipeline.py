"""Scene-level compression and decoding: tiles -> normalise -> codec -> container, and back.

The caller supplies the scene as a :class:`SceneInfo` plus a ``read_window(y0, x0, h, w)`` function
returning (bands, h, w) arrays, so the engine streams tile by tile and never needs GDAL.

A tile payload in the container is::

    u8 flags (bit 0: a no-data mask follows; bit 1: a NaN mask follows)
    [u32 length, zlib(packbits(invalid samples))]   only when flag bit 0 is set
    [u32 length, zlib(packbits(NaN samples))]       only when flag bit 1 is set (float sources)
    codec bytes

Invalid samples decode to the nodata value, or to NaN where the NaN mask says so: both exactly.

An error-bounded file (header ``max_abs_error`` set, format 1.2) sets flag bit 2 and ends differently::

    u32 length, codec bytes
    residual section (engine/residual.py)

The learned part is decoded on the CPU in that case, by the encoder too (see ``residual_codec``), so
that both compute the same reconstruction; the section checks that they did.
"""

from __future__ import annotations

import math
import struct
import threading
import zlib
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine import residual
from engine.container import Header, open_hsic, write_hsic
from engine.errors import CancelledError, CodecError, FormatError, HSICError, InputError
from engine.normalise import fill_invalid, normalisation, valid_mask, valid_range
from engine.overviews import build_section as build_overview_section
from engine.overviews import default_factors
from engine.registry import get_codec
from engine.tiling import TileGrid, extract_tile

DEFAULT_TILE = 128
# Largest tile, checked on writing and on opening, so that a crafted header cannot make the decoder
# allocate gigabytes for one tile: at most 512 x 512 pixels and 2**27 samples (512 x 512 x 512 bands).
MAX_TILE_PIXELS = 1 << 18
MAX_TILE_SAMPLES = 1 << 27


def check_tile_size(bands: int, tile_rows: int, tile_cols: int) -> str | None:
    """Why a tile of this size is refused, or None when it is fine."""
    if tile_rows * tile_cols > MAX_TILE_PIXELS or bands * tile_rows * tile_cols > MAX_TILE_SAMPLES:
        return (f"tiles of {tile_rows} x {tile_cols} pixels x {bands} bands exceed the limit of "
                f"{MAX_TILE_PIXELS} pixels and {MAX_TILE_SAMPLES} samples per tile")
    return None
OVERVIEW_PROGRESS_SHARE = 0.1
_RESIDUAL_FLAG = 4  # tile flag bit 2: error-bounded tile (codec bytes with their length, then a residual section)
SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")

ReadWindow = Callable[[int, int, int, int], np.ndarray]
Progress = Callable[[float], "bool | None"]


@dataclass(frozen=True)
class SceneInfo:
    """What the container keeps about a source raster besides its pixels."""

    rows: int
    cols: int
    bands: int
    dtype: str
    nodata: float | None = None
    crs_wkt: str = ""
    geotransform: tuple[float, ...] | None = None
    band_descriptions: tuple[str, ...] = ()
    band_metadata: tuple[dict, ...] = ()
    band_scale: tuple[float | None, ...] = ()
    band_offset: tuple[float | None, ...] = ()
    metadata: dict = field(default_factory=dict)

    @classmethod
    def from_header(cls, h: Header) -> "SceneInfo":
        """The scene a .hsic file describes (to re-code it)."""
        return cls(h.rows, h.cols, h.bands, h.dtype, h.nodata, h.crs_wkt, h.geotransform, h.band_descriptions,
                   h.band_metadata, h.band_scale, h.band_offset, h.metadata)

    def __post_init__(self):
        if self.dtype not in SUPPORTED_DTYPES:
            raise InputError(f"unsupported data type {self.dtype!r}; supported: {', '.join(SUPPORTED_DTYPES)}")
        if min(self.rows, self.cols, self.bands) < 1:
            raise InputError(f"empty raster ({self.bands} bands x {self.rows} rows x {self.cols} cols)")


def check_progress(progress: Progress | None, fraction: float) -> None:
    """Report progress; a callback returning False cancels the work (CancelledError)."""
    if progress is not None and progress(fraction) is False:
        raise CancelledError("cancelled")


def scene_range(info: SceneInfo, read_window: ReadWindow, grid: TileGrid) -> tuple[float, float]:
    """(min, max) of the valid samples of the whole scene, one tile at a time."""
    lo, hi = np.inf, -np.inf
    for y0, x0, h, w in grid.windows():
        raw = read_window(y0, x0, h, w)
        a, b = valid_range(raw, valid_mask(raw, info.nodata))
        lo, hi = min(lo, a), max(hi, b)
    return lo, hi


def _norm(header: Header) -> tuple[np.ndarray, np.ndarray]:
    """Per-band normalisation as (bands, 1, 1) arrays for broadcasting."""
    return (np.asarray(header.norm_offset, dtype=np.float64)[:, None, None],
            np.asarray(header.norm_scale, dtype=np.float64)[:, None, None])


def _prepare(raw: np.ndarray, header: Header, codec):
    """A raw tile's normalised codec input, the payload bytes before the codec's (flags, masks), the
    valid-sample mask and the masks themselves."""
    valid = valid_mask(raw, header.nodata)
    offset, scale = _norm(header)
    x = ((raw.astype(np.float64) - offset) / scale).astype(np.float32)
    fill_invalid(x, valid)
    if codec.pad_edge_tiles:  # spatial codecs see full tiles: edge tiles padded by replication
        x = extract_tile(x, TileGrid(raw.shape[1], raw.shape[2], header.tile_rows, header.tile_cols), 0)
    masks = []
    if not valid.all():
        masks.append(~valid)
        nan = np.isnan(raw) if raw.dtype.kind == "f" else None
        if nan is not None and nan.any() and not (header.nodata is not None and np.isnan(header.nodata)):
            masks.append(nan)
    bounded = header.max_abs_error is not None
    parts = [bytes([(1 << len(masks)) - 1 | (_RESIDUAL_FLAG if bounded else 0)])]
    for m in masks:
        packed = zlib.compress(np.packbits(m).tobytes(), 9)
        parts += [struct.pack("<I", len(packed)), packed]
    return x, parts, valid, masks


def encode_payloads(raws: list[np.ndarray], header: Header, codec, decoder=None) -> list[bytes]:
    """Payloads of several tiles (raw source samples, each (bands, h, w)) through one codec batch.

    ``decoder``: for an error-bounded header, the codec instance the decoder will use (a CPU one,
    :func:`residual_codec`); ``codec`` itself when None.
    """
    prepared = [_prepare(raw, header, codec) for raw in raws]
    coded = codec.encode_tiles([x for x, _, _, _ in prepared])
    if header.max_abs_error is None:
        return [b"".join([*parts, c]) for (_, parts, _, _), c in zip(prepared, coded)]
    # The residual is taken against exactly what the decoder will reconstruct from these bytes.
    decoder = decoder or codec
    fulls = _codec_decode(decoder, [(c, _coded_shape(header, decoder, *raw.shape[1:]))
                                    for raw, c in zip(raws, coded)])
    out = []
    for raw, (_, parts, valid, masks), c, full in zip(raws, prepared, coded, fulls):
        pred = _to_source(full, header, *raw.shape[1:], masks)
        nan = masks[1] if len(masks) == 2 else None
        section = residual.encode_section(raw, pred, valid, header.max_abs_error,
                                          lambda rec, valid=valid, nan=nan: _finish(rec, header.nodata, valid, nan))
        out.append(b"".join(parts + [struct.pack("<I", len(c)), c, section]))
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


def _to_dtype(x: np.ndarray, dtype: np.dtype, nodata: float | None, valid: np.ndarray | None,
              nan: np.ndarray | None = None) -> np.ndarray:
    """Cast decoded samples to the source type; a valid sample never takes the nodata value, invalid ones
    take nodata (or NaN where ``nan`` is set)."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        out = np.clip(np.rint(x), info.min, info.max).astype(dtype)
    else:
        out = x.astype(dtype)
    _finish(out, nodata, valid, nan)
    return out


def _finish(out: np.ndarray, nodata: float | None, valid: np.ndarray | None, nan: np.ndarray | None) -> None:
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


def _inflate_mask(data: bytes, size: int) -> bytes:
    """Exactly ``size`` bytes inflated from ``data``; a bounded inflate, so no deflate bomb."""
    d = zlib.decompressobj()
    out = d.decompress(data, size + 1)
    if len(out) != size or not d.eof or d.unused_data or d.unconsumed_tail:
        raise FormatError(f"tile mask has the wrong size (expected {size} bytes)")
    return out


def _fits(value: float | None, dtype: np.dtype) -> bool:
    """Whether ``value`` is exactly representable in the integer type ``dtype``."""
    info = np.iinfo(dtype)
    return value is not None and math.isfinite(value) and value == int(value) and info.min <= value <= info.max


def _parse_payload(payload: bytes, header: Header, codec, h: int, w: int):
    """A tile payload's masks, codec bytes, the shape the codec coded and the residual section (None
    unless the header is error-bounded)."""
    bands = header.bands
    masks = []
    bounded = header.max_abs_error is not None
    try:
        flags = payload[0]
        if flags & ~_RESIDUAL_FLAG not in (0, 1, 3) or bool(flags & _RESIDUAL_FLAG) != bounded:
            raise FormatError(f"unknown tile flags {flags} (header max_abs_error: {header.max_abs_error})")
        pos = 1
        for _ in range((flags & ~_RESIDUAL_FLAG).bit_length()):
            (n,) = struct.unpack_from("<I", payload, pos)
            if pos + 4 + n > len(payload):
                raise FormatError("tile mask runs past the end of the payload")
            bits = np.frombuffer(_inflate_mask(payload[pos + 4: pos + 4 + n], -(-bands * h * w // 8)),
                                 dtype=np.uint8)
            masks.append(np.unpackbits(bits, count=bands * h * w).astype(bool).reshape(bands, h, w))
            pos += 4 + n
        end = len(payload)
        if bounded:
            (n,) = struct.unpack_from("<I", payload, pos)
            pos += 4
            end = pos + n
            if end > len(payload):
                raise FormatError("tile's codec bytes run past the end of the payload")
    except (IndexError, struct.error, zlib.error) as e:
        raise FormatError(f"corrupt tile payload: {e}") from e
    dtype = np.dtype(header.dtype)
    if masks and dtype.kind in "iu" and not _fits(header.nodata, dtype):
        raise FormatError(f"tile has a no-data mask but nodata {header.nodata} is not a {dtype} value")
    if len(masks) == 2 and dtype.kind != "f":
        raise FormatError(f"tile has a NaN mask but the samples are {dtype}")
    return masks, payload[pos:end], _coded_shape(header, codec, h, w), (payload[end:] if bounded else None)


def _coded_shape(header: Header, codec, h: int, w: int) -> tuple[int, int, int]:
    """The shape a codec coded an h x w tile at: spatial codecs code edge tiles padded to the full tile."""
    return (header.bands, *((header.tile_rows, header.tile_cols) if codec.pad_edge_tiles else (h, w)))


def _codec_decode(codec, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
    """codec.decode_tiles with a codec's parse failures turned into FormatError."""
    try:
        return codec.decode_tiles(items)
    except (ValueError, RuntimeError, IndexError, OverflowError) as e:
        if isinstance(e, HSICError):
            raise
        # CRCs catch accidental corruption; this is a crafted or foreign payload the codec cannot parse.
        raise FormatError(f"corrupt tile payload: {type(e).__name__}: {e}") from e


def _to_source(full: np.ndarray, header: Header, h: int, w: int, masks: list[np.ndarray]) -> np.ndarray:
    """A decoded (normalised) tile in source units and type, cropped to (bands, h, w), masks applied."""
    offset, scale = _norm(header)
    x = full[:, :h, :w].astype(np.float64) * scale + offset
    return _to_dtype(x, np.dtype(header.dtype), header.nodata, ~masks[0] if masks else None,
                     masks[1] if len(masks) == 2 else None)


def decode_payloads(items: list[tuple[bytes, int, int]], header: Header, codec) -> list[np.ndarray]:
    """Decode several (payload, h, w) through one codec batch to source units and type, each (bands, h, w)."""
    parsed = [_parse_payload(p, header, codec, h, w) for p, h, w in items]
    fulls = _codec_decode(codec, [(data, shape) for _, data, shape, _ in parsed])
    out = []
    for (masks, _, _, section), full, (_, h, w) in zip(parsed, fulls, items):
        arr = _to_source(full, header, h, w, masks)
        if section is not None:
            valid = ~masks[0] if masks else np.ones(arr.shape, dtype=bool)
            nan = masks[1] if len(masks) == 2 else None
            arr = residual.decode_section(section, arr, valid, header.max_abs_error,
                                          lambda rec, valid=valid, nan=nan: _finish(rec, header.nodata, valid, nan))
        out.append(arr)
    return out


def decode_payload(payload: bytes, header: Header, codec, h: int, w: int) -> np.ndarray:
    """Decode one tile payload to source units and type, cropped to (bands, h, w)."""
    return decode_payloads([(payload, h, w)], header, codec)[0]


def compress_scene(info: SceneInfo, read_window: ReadWindow, dst: str, codec: str, quality: int | None = None,
                   device: str = "auto", tile_size: int = DEFAULT_TILE, progress: Progress | None = None,
                   weights: str | None = None, overviews: tuple[int, ...] | None = None,
                   max_abs_error: float | None = None) -> Header:
    """Compress a scene into ``dst`` (.hsic, written atomically). Returns the header written.

    ``weights``: a user's weights file for the codec and quality (recorded in the header, see
    :mod:`engine.user_weights`), instead of the installed one. ``overviews``: factors of the
    reduced-resolution levels stored with the scene (engine/overviews.py); None chooses them from the
    scene size, () stores none. ``max_abs_error``: error-bounded mode (engine/residual.py), every valid
    sample decodes within this of the source, in source units (0: lossless); overviews are not bounded.
    """
    from engine.user_weights import codec_options

    max_abs_error = residual.check_max_abs_error(max_abs_error)
    coder = get_codec(codec, quality, device, weights=weights)
    decoder = residual_codec(coder) if max_abs_error is not None else None
    grid = TileGrid(info.rows, info.cols, min(tile_size, info.rows), min(tile_size, info.cols))
    too_big = check_tile_size(info.bands, grid.tile_rows, grid.tile_cols)
    if too_big:
        raise InputError(f"{too_big}; use a smaller tile size")
    offset, scale = normalisation(*scene_range(info, read_window, grid), info.bands)
    header = Header.create(
        rows=info.rows, cols=info.cols, bands=info.bands, dtype=info.dtype, nodata=info.nodata,
        tile_rows=grid.tile_rows, tile_cols=grid.tile_cols, codec=coder.info.id, quality=coder.quality,
        weights_sha256=coder.weights_sha256, norm_offset=offset, norm_scale=scale, crs_wkt=info.crs_wkt,
        geotransform=info.geotransform, band_descriptions=info.band_descriptions,
        band_metadata=info.band_metadata, band_scale=info.band_scale, band_offset=info.band_offset,
        metadata=info.metadata, codec_options=codec_options(weights), max_abs_error=max_abs_error,
    )

    factors = default_factors(info.rows, info.cols) if overviews is None else tuple(overviews)
    share = OVERVIEW_PROGRESS_SHARE if factors else 0.0  # of the progress bar, for the overview pass
    trailer = build_overview_section(header, read_window, coder, factors,
                                     lambda f: check_progress(progress, share * f))

    def payloads():
        # Groups of the codec's batch size: memory is bounded by one group, whatever the scene size.
        windows = list(grid.windows())
        group = coder.batch_size
        for start in range(0, len(windows), group):
            raws = [read_window(*win) for win in windows[start:start + group]]
            yield from encode_payloads(raws, header, coder, decoder)
            check_progress(progress, share + (1 - share) * min(start + group, len(windows)) / grid.n_tiles)

    write_hsic(dst, header, payloads(), trailer=trailer)
    return header


class SceneDecoder:
    """Decodes a .hsic file tile by tile, with a thread-safe LRU cache of decoded tiles.

    One decoded tile serves all bands: GDAL calls a VRT pixel function once per band per request.
    """

    def __init__(self, path: str, device: str = "auto", cache_bytes: int = 256 << 20, weights: str | None = None):
        from engine.user_weights import find_weights

        self.reader = open_hsic(path)
        self.header = self.reader.header
        h = self.header
        self.grid = TileGrid(h.rows, h.cols, h.tile_rows, h.tile_cols)
        too_big = check_tile_size(h.bands, min(h.tile_rows, h.rows), min(h.tile_cols, h.cols))
        if too_big:
            self.reader.close()
            raise FormatError(f"{path}: {too_big} (corrupt or foreign file)")
        if h.max_abs_error is not None:
            device = "cpu"  # the residual is relative to the CPU reconstruction (see residual_codec)
        try:
            self.codec = get_codec(h.codec, h.quality, device, weights=find_weights(path, h, weights))
        except BaseException:
            self.reader.close()
            raise
        if self.codec.weights_sha256 != h.weights_sha256:
            self.reader.close()
            raise CodecError(
                f"{path} was written with other weights for {h.codec} quality {h.quality} "
                f"(digest {h.weights_sha256[:12]}, installed {self.codec.weights_sha256[:12]}); "
                "decode it with the HSIC version that wrote it"
            )
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._tile_bytes = h.bands * h.tile_rows * h.tile_cols * np.dtype(h.dtype).itemsize
        self._max_tiles = max(1, cache_bytes // self._tile_bytes)
        self._lock = threading.Lock()
        self.decoded_tiles = 0  # how many tiles were really decoded (cache misses), for tests and stats

    def set_cache_bytes(self, cache_bytes: int) -> None:
        """Resize the decoded-tile cache (at least one tile), dropping the oldest tiles beyond it."""
        with self._lock:
            self._max_tiles = max(1, cache_bytes // self._tile_bytes)
            while len(self._cache) > self._max_tiles:
                self._cache.popitem(last=False)

    def tile(self, i: int) -> np.ndarray:
        """Decoded tile i in source units and type, cropped at the scene edge."""
        return self.tiles([i])[0]

    def tiles(self, indices: list[int]) -> list[np.ndarray]:
        """Decoded tiles, those not cached decoded together (one codec batch: pass at most batch_size)."""
        with self._lock:
            found = {i: self._cache[i] for i in indices if i in self._cache}
            for i in found:
                self._cache.move_to_end(i)
            missing = [i for i in dict.fromkeys(indices) if i not in found]
            if missing:
                items = [(self.reader.read_tile(i), *self.grid.window(i)[2:]) for i in missing]
                for i, arr in zip(missing, decode_payloads(items, self.header, self.codec)):
                    found[i] = self._cache[i] = arr
                self.decoded_tiles += len(missing)
                while len(self._cache) > self._max_tiles:
                    self._cache.popitem(last=False)
            return [found[i] for i in indices]

    def read(self, yoff: int = 0, xoff: int = 0, ysize: int | None = None, xsize: int | None = None,
             bands: list[int] | None = None, progress: Progress | None = None) -> np.ndarray:
        """A window (bands, ysize, xsize) in source type; ``bands`` are 0-based indices (all by default)."""
        h = self.header
        ysize = h.rows - yoff if ysize is None else ysize
        xsize = h.cols - xoff if xsize is None else xsize
        if yoff < 0 or xoff < 0 or ysize < 1 or xsize < 1 or yoff + ysize > h.rows or xoff + xsize > h.cols:
            raise InputError(f"window (xoff={xoff}, yoff={yoff}, xsize={xsize}, ysize={ysize}) "
                             f"is outside the {h.cols} x {h.rows} raster")
        sel = list(range(h.bands)) if bands is None else list(bands)
        out = np.empty((len(sel), ysize, xsize), dtype=h.dtype)
        touched = list(self.grid.tiles_touching(yoff, xoff, ysize, xsize))
        group = self.codec.batch_size  # tiles decoded per codec call: memory bounded by one group
        for start in range(0, len(touched), group):
            batch = touched[start:start + group]
            for i, t in zip(batch, self.tiles(batch)):
                ty, tx, th, tw = self.grid.window(i)
                y0, y1 = max(ty, yoff), min(ty + th, yoff + ysize)
                x0, x1 = max(tx, xoff), min(tx + tw, xoff + xsize)
                out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = t[sel, y0 - ty:y1 - ty, x0 - tx:x1 - tx]
            check_progress(progress, min(start + group, len(touched)) / len(touched))
        return out

    def close(self) -> None:
        self.reader.close()
