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
from engine.format.container import INDEX_ENTRY_BYTES, SUPPORTED_DTYPES, Header, open_hsic, write_hsic
from engine.normalise import normalisation, valid_mask, valid_range
from engine.overviews import build_section as build_overview_section, default_factors
from engine.parallel import thread_map
from engine.payloads import DecodedTile, decode_tiles, encode_payloads, normalised, residual_codec
from engine.registry import get_codec
from engine.residual import check_max_abs_error
from engine.tiling import TileGrid
from engine.user_weights import codec_options, find_weights

DEFAULT_TILE = 128
# Largest tile, checked on writing and on opening, so that a crafted header cannot make the decoder
# allocate gigabytes for one tile: at most 512 x 512 pixels and 2**27 samples (512 x 512 x 512 bands).
MAX_TILE_SIDE = 512
MAX_TILE_SAMPLES = 1 << 27
MAX_TILES = (1 << 32) - 1  # the container's tile count is a u32 (docs/format.md)


def check_tile_size(bands: int, tile_rows: int, tile_cols: int) -> str | None:
    """Why a tile of this size is refused, or None when it is fine."""
    if max(tile_rows, tile_cols) > MAX_TILE_SIDE or bands * tile_rows * tile_cols > MAX_TILE_SAMPLES:
        return (f"tiles of {tile_rows} x {tile_cols} pixels x {bands} bands exceed the limit of "
                f"{MAX_TILE_SIDE} x {MAX_TILE_SIDE} pixels and {MAX_TILE_SAMPLES} samples per tile")
    return None


def check_bands(bands: list[int], count: int) -> None:
    """InputError unless every 0-based band index is one of the ``count`` bands (no negative indexing)."""
    bad = [b for b in bands if not 0 <= b < count]
    if bad:
        raise InputError(f"band {bad[0] + 1} does not exist (the raster has bands 1..{count})")


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


def scene_header(info: SceneInfo, read_window: ReadWindow, grid: TileGrid, coder, weights: str | None = None,
                 max_abs_error: float | None = None, value_range: tuple[float, float] | None = None) -> Header:
    """The header :func:`compress_scene` writes for ``info`` coded by ``coder`` (one pass over the scene
    for its value range, which sets the normalisation, unless ``value_range`` is given)."""
    if value_range is None:
        value_range = scene_range(info, read_window, grid)
    offset, scale = normalisation(*value_range, info.bands)
    return Header.create(
        rows=info.rows, cols=info.cols, bands=info.bands, dtype=info.dtype, nodata=info.nodata,
        tile_rows=grid.tile_rows, tile_cols=grid.tile_cols, codec=coder.info.id, quality=coder.quality,
        weights_sha256=coder.weights_sha256, norm_offset=offset, norm_scale=scale, crs_wkt=info.crs_wkt,
        geotransform=info.geotransform, band_descriptions=info.band_descriptions,
        band_metadata=info.band_metadata, band_scale=info.band_scale, band_offset=info.band_offset,
        metadata=info.metadata, codec_options=codec_options(weights), max_abs_error=max_abs_error,
    )


@dataclass
class ScenePass:
    """What compressing a scene learns from passes over the whole scene that do not depend on the quantiser
    step: its value range, the codec's scene statistics and the overview levels' source windows. A rate search fills it at its first trial and
    every later trial reuses it (the same source, codec and tile size), reading the scene once less."""

    value_range: tuple[float, float] | None = None
    statistics: object = None
    sample: dict = field(default_factory=dict)  # tile index -> raw window, for :func:`estimate_bytes`
    levels: dict = field(default_factory=dict)  # the overview levels' windows (engine.overviews.build_section)


def prepare_scene(info: SceneInfo, read_window: ReadWindow, codec: str, quality: int | None = None,
                  device: str = "auto", tile_size: int = DEFAULT_TILE, weights: str | None = None,
                  max_abs_error: float | None = None, step: float | None = None,
                  scene_pass: ScenePass | None = None):
    """(coder, grid, header, scene bytes or None) of a compression, the scene stage fitted and bound."""
    max_abs_error = check_max_abs_error(max_abs_error)
    coder = get_codec(codec, quality, device, weights=weights)
    if step is not None:
        coder.set_step(step)
    grid = TileGrid(info.rows, info.cols, min(tile_size, info.rows), min(tile_size, info.cols))
    too_big = check_tile_size(info.bands, grid.tile_rows, grid.tile_cols)
    if too_big:
        raise InputError(f"{too_big}; use a smaller tile size")
    if grid.n_tiles > MAX_TILES:  # refused before the range scan, which would read the whole scene
        raise InputError(f"a {info.rows} x {info.cols} raster makes {grid.n_tiles} tiles of "
                         f"{grid.tile_rows} x {grid.tile_cols}, more than a .hsic file can index ({MAX_TILES})")
    scene_pass = ScenePass() if scene_pass is None else scene_pass
    if scene_pass.value_range is None:
        scene_pass.value_range = scene_range(info, read_window, grid)
    header = scene_header(info, read_window, grid, coder, weights, max_abs_error, scene_pass.value_range)
    scene = None
    if coder.uses_scene_stage:
        if scene_pass.statistics is None:
            scene_pass.statistics = coder.scene_statistics(
                (normalised(read_window(*win), header) for win in grid.windows()), info.bands)
        scene = coder.stage_from_statistics(scene_pass.statistics, info.bands)
    return coder, grid, header, scene


def compress_scene(info: SceneInfo, read_window: ReadWindow, dst: str, codec: str, quality: int | None = None,
                   device: str = "auto", tile_size: int = DEFAULT_TILE, progress: Progress | None = None,
                   weights: str | None = None, overviews: tuple[int, ...] | None = None,
                   max_abs_error: float | None = None, step: float | None = None,
                   scene_pass: ScenePass | None = None) -> Header:
    """Compress a scene into ``dst`` (.hsic, written atomically). Returns the header written.

    ``weights``: a user's weights file for the codec and quality (recorded in the header, see
    :mod:`engine.user_weights`), instead of the installed one. ``overviews``: factors of the
    reduced-resolution levels stored with the scene (engine/overviews.py); None chooses them from the
    scene size, () stores none. ``max_abs_error``: error-bounded mode (engine/residual.py), every valid
    sample decodes within this of the source, in source units (0: lossless); overviews are not bounded.
    ``step``: the quantiser step of a continuous-rate codec, instead of its quality's preset.
    ``scene_pass``: the step-independent passes over this scene from an earlier trial (see :class:`ScenePass`).

    A codec with a scene stage (``uses_scene_stage``) is fitted in one more pass over the scene, after
    the value range's; its bytes go to the file's scene section (format 1.3), counted in the rate.
    """
    coder, grid, header, scene = prepare_scene(info, read_window, codec, quality, device, tile_size, weights,
                                               max_abs_error, step, scene_pass)
    decoder = residual_codec(coder) if header.max_abs_error is not None else None

    factors = default_factors(info.rows, info.cols) if overviews is None else tuple(overviews)
    share = OVERVIEW_PROGRESS_SHARE if factors else 0.0  # of the progress bar, for the overview pass
    trailer = build_overview_section(header, read_window, coder, factors,
                                     lambda f: check_progress(progress, share * f),
                                     None if scene_pass is None else scene_pass.levels)

    def payloads():
        # Groups of the codec's batch size: memory is bounded by one group, whatever the scene size.
        windows = list(grid.windows())
        group = coder.batch_size
        for start in range(0, len(windows), group):
            raws = [read_window(*win) for win in windows[start:start + group]]
            yield from encode_payloads(raws, header, coder, decoder)
            check_progress(progress, share + (1 - share) * min(start + group, len(windows)) / grid.n_tiles)

    write_hsic(dst, header, payloads(), trailer=trailer, scene=scene)
    return header


def sample_tiles(n_tiles: int) -> list[int]:
    """Tiles spread evenly over the scene whose bytes stand for all of them in a rate estimate: one in
    eight, at least 8 (all of a scene of 8 tiles or fewer)."""
    m = min(n_tiles, max(8, n_tiles // 8))
    return sorted({int(round(i)) for i in np.linspace(0, n_tiles - 1, m)})


def estimate_bytes(info: SceneInfo, read_window: ReadWindow, codec: str, quality: int | None, step: float,
                   scene_pass: ScenePass, tile_size: int = DEFAULT_TILE, device: str = "auto") -> float:
    """The bytes of the scene stage plus the tiles' payloads at ``step``, extrapolated by area from
    :func:`sample_tiles` (coded for real, nothing written). The container's header and overviews are not
    counted: a rate search calibrates the estimate against a file it wrote."""
    coder, grid, header, scene = prepare_scene(info, read_window, codec, quality, device, tile_size,
                                               step=step, scene_pass=scene_pass)
    picks = sample_tiles(grid.n_tiles)
    for i in picks:
        if i not in scene_pass.sample:
            scene_pass.sample[i] = read_window(*grid.window(i))
    raws = [scene_pass.sample[i] for i in picks]
    coded = 0
    for start in range(0, len(raws), coder.batch_size):
        coded += sum(len(p) for p in encode_payloads(raws[start:start + coder.batch_size], header, coder))
    area = sum(r.shape[1] * r.shape[2] for r in raws)
    return len(scene or b"") + coded * (info.rows * info.cols) / area


MODEL_PIXELS = 1 << 17  # the most pixels a rate model keeps components of (4 bytes per pixel and component)


def model_estimate(info: SceneInfo, read_window: ReadWindow, codec: str, quality: int | None,
                   scene_pass: ScenePass, tile_size: int = DEFAULT_TILE,
                   device: str = "auto") -> Callable[[float], float] | None:
    """A function of the step estimating the bytes of the scene stage plus the tiles' payloads from the
    codec's rate model (:meth:`engine.codecs.base.TileCodec.rate_model`) on tiles spread over the scene (at
    most MODEL_PIXELS), extrapolated by area; None when the codec has no rate model. Far cheaper than
    :func:`estimate_bytes` and less exact: a rate search calibrates it against the files it writes."""
    coder, grid, header, _ = prepare_scene(info, read_window, codec, quality, device, tile_size,
                                           scene_pass=scene_pass)
    n = max(1, min(grid.n_tiles, MODEL_PIXELS // (grid.tile_rows * grid.tile_cols)))
    picks = sorted({int(round(i)) for i in np.linspace(0, grid.n_tiles - 1, n)})
    model = coder.rate_model(lambda: (normalised(read_window(*grid.window(i)), header)[0] for i in picks),
                             scene_pass.statistics)
    if model is None:
        return None
    area = sum(grid.window(i)[2] * grid.window(i)[3] for i in picks)
    # The header and the tile index do not depend on the step: counted here, a small file's estimate keeps
    # its shape (overviews and other framing are left to the search's calibration).
    fixed = len(header.to_compact_bytes()) + grid.n_tiles * INDEX_ENTRY_BYTES

    def estimate(step: float) -> float:
        coder.set_step(step)
        stage = coder.stage_from_statistics(scene_pass.statistics, info.bands)
        return fixed + len(stage) + model.bits(step) / 8 * (info.rows * info.cols) / area

    return estimate


class SceneDecoder:
    """Decodes a .hsic file tile by tile, with a thread-safe LRU cache of decoded tiles.

    One decoded tile serves all bands: GDAL calls a VRT pixel function once per band per request. The
    cache keeps what the codec decodes a tile to (:class:`engine.payloads.DecodedTile`: for ``klt`` the
    components), and a read makes source samples of only the bands it asks for.
    """

    def __init__(self, path: str, device: str = "auto", cache_bytes: int = 256 << 20, weights: str | None = None):
        self.reader = open_hsic(path)
        self.header = self.reader.header
        h = self.header
        self.grid = TileGrid(h.rows, h.cols, h.tile_rows, h.tile_cols)
        # The declared tile, not its crop to the scene: spatial codecs decode the full tile.
        too_big = check_tile_size(h.bands, h.tile_rows, h.tile_cols)
        if too_big:
            self.reader.close()
            raise FormatError(f"{path}: {too_big} (corrupt or foreign file)")
        if h.max_abs_error is not None:
            device = "cpu"  # the residual is relative to the CPU reconstruction (see residual_codec)
        try:
            self.codec = get_codec(h.codec, h.quality, device, weights=find_weights(path, h, weights))
            if self.codec.uses_scene_stage:
                if self.reader.scene_bytes is None:
                    raise FormatError(f"{path}: codec {h.codec} needs a scene section, the file has none")
                self.codec.bind_scene(self.reader.scene_bytes, h.bands)
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
        self._cache: OrderedDict[int, DecodedTile] = OrderedDict()
        self._cache_bytes = cache_bytes
        self._cached = 0  # bytes held by the cache
        self._lock = threading.Lock()
        self.decoded_tiles = 0  # how many tiles were really decoded (cache misses), for tests and stats

    def _trim(self) -> None:
        # Oldest first, but always keep the newest tile (a cache smaller than one tile still serves reads).
        while len(self._cache) > 1 and self._cached > self._cache_bytes:
            self._cached -= self._cache.popitem(last=False)[1].nbytes

    def set_cache_bytes(self, cache_bytes: int) -> None:
        """Resize the decoded-tile cache (at least one tile), dropping the oldest tiles beyond it."""
        with self._lock:
            self._cache_bytes = cache_bytes
            self._trim()

    def tile(self, i: int) -> np.ndarray:
        """Decoded tile i in source units and type, cropped at the scene edge."""
        return self.tiles([i])[0]

    def tiles(self, indices: list[int]) -> list[np.ndarray]:
        """Decoded tiles, all bands (see :meth:`decoded`)."""
        return [t.bands() for t in self.decoded(indices)]

    def decoded(self, indices: list[int]) -> list[DecodedTile]:
        """Decoded tiles, those not cached decoded together (one codec batch: pass at most batch_size)."""
        with self._lock:
            found = {i: self._cache[i] for i in indices if i in self._cache}
            for i in found:
                self._cache.move_to_end(i)
            missing = [i for i in dict.fromkeys(indices) if i not in found]
            if missing:
                items = [(self.reader.read_tile(i), *self.grid.window(i)[2:]) for i in missing]
                for i, t in zip(missing, decode_tiles(items, self.header, self.codec)):
                    found[i] = self._cache[i] = t
                    self._cached += t.nbytes
                self.decoded_tiles += len(missing)
                self._trim()
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
        if bands is not None:
            check_bands(list(bands), h.bands)
        sel = None if bands is None else np.asarray(list(bands), dtype=np.int64)
        out = np.empty((h.bands if sel is None else sel.size, ysize, xsize), dtype=h.dtype)
        touched = list(self.grid.tiles_touching(yoff, xoff, ysize, xsize))
        group = self.codec.batch_size  # tiles decoded per codec call: memory bounded by one group
        for start in range(0, len(touched), group):
            batch = touched[start:start + group]

            def place(pair):  # tiles fill disjoint parts of out: several at once, on all cores
                i, t = pair
                ty, tx, th, tw = self.grid.window(i)
                y0, y1 = max(ty, yoff), min(ty + th, yoff + ysize)
                x0, x1 = max(tx, xoff), min(tx + tw, xoff + xsize)
                out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = t.bands(sel)[:, y0 - ty:y1 - ty, x0 - tx:x1 - tx]

            thread_map(place, zip(batch, self.decoded(batch)))
            check_progress(progress, min(start + group, len(touched)) / len(touched))
        return out

    def close(self) -> None:
        self.reader.close()
