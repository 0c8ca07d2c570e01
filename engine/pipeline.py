"""Scene-level compression and decoding: a scene tile by tile through the codec into a .hsic file, and back.

The caller supplies the scene as a :class:`SceneInfo` plus a ``read_window(y0, x0, h, w)`` function
returning (bands, h, w) arrays, so the engine streams tile by tile and never needs GDAL. One tile's
payload is made and read by :mod:`engine.payloads`; the file by :mod:`engine.format.container`; the
overview levels by :mod:`engine.overviews`.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine import weight_files
from engine.errors import CancelledError, CodecError, FormatError, InputError
from engine.format.container import SUPPORTED_DTYPES, Header, open_hsic, write_hsic
from engine.normalise import normalisation, valid_mask, valid_range
from engine.overviews import build_section as build_overview_section, default_factors
from engine.payloads import decode_payloads, encode_payloads, residual_codec
from engine.registry import get_codec
from engine.residual import check_max_abs_error
from engine.tiling import TileGrid
from engine.user_weights import codec_options, find_weights

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
    max_abs_error = check_max_abs_error(max_abs_error)
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
                f"(digest {h.weights_sha256[:12]}, installed {self.codec.weights_sha256[:12]}), and "
                f"{weight_files.WEIGHTS_DIR / weight_files.ARCHIVE} holds none of that digest: "
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
