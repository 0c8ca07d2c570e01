"""Reduced-resolution levels (overviews) stored in a .hsic file, so zoomed-out views decode little.

A level of factor ``f`` is the scene block-averaged over ``f x f`` pixels (no-data samples left out;
a block with no valid sample is no-data), coded with the scene's own codec, normalisation and tile
size. Levels are computed from the source at compress time and stored in the container's trailer
(format 1.1, ``docs/format.md``) as the overview section of :mod:`engine.format.overview`.

Their bits are in the file, so they count in the rate: a level of factor 4 costs about 1/16 of the
full-resolution payload, factor 16 about 1/256.
"""

from __future__ import annotations

import dataclasses
import math
import threading
from collections import OrderedDict
from typing import Callable

import numpy as np

from engine.errors import InputError
from engine.format import overview as section
from engine.format.container import Header, HsicReader
from engine.normalise import valid_mask
from engine.payloads import decode_payload, encode_payload, to_dtype
from engine.tiling import TileGrid

BASE_FACTOR = 4
MIN_SIZE = 64  # a level is kept while its longer side has at least this many pixels

ReadWindow = Callable[[int, int, int, int], np.ndarray]


def default_factors(rows: int, cols: int) -> tuple[int, ...]:
    """Factors 4, 16, 64, ... while the level's longer side keeps at least MIN_SIZE pixels."""
    factors, f = [], BASE_FACTOR
    while -(-max(rows, cols) // f) >= MIN_SIZE:
        factors.append(f)
        f *= BASE_FACTOR
    return tuple(factors)


def level_header(header: Header, factor: int) -> Header:
    """The header a level's tiles are coded with: the scene's, at the level's size."""
    # Levels are previews: coded without the error bound of an error-bounded file (no residual).
    return dataclasses.replace(header, rows=-(-header.rows // factor), cols=-(-header.cols // factor),
                               max_abs_error=None)


def block_mean(raw: np.ndarray, factor: int, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """(mean of the valid samples of each f x f block as float64, valid mask of the result).

    ``raw`` is (bands, h, w); blocks at the right and bottom edge may be partial.
    """
    b, h, w = raw.shape
    valid = valid_mask(raw, nodata)
    hh, ww = -(-h // factor) * factor, -(-w // factor) * factor
    shape = (b, hh // factor, factor, ww // factor, factor)
    if (hh, ww) == (h, w) and valid.all():
        # Whole blocks, all valid (the usual case): the same array and sums as below, without the copies
        # and the count (every block counts factor^2 samples), so the same means to the last bit.
        total = raw.astype(np.float64).reshape(shape).sum(axis=(2, 4))
        return total / float(factor * factor), np.ones(total.shape, dtype=bool)
    x = np.zeros((b, hh, ww))
    n = np.zeros((b, hh, ww))
    x[:, :h, :w] = np.where(valid, raw, 0)
    n[:, :h, :w] = valid
    total, count = x.reshape(shape).sum(axis=(2, 4)), n.reshape(shape).sum(axis=(2, 4))
    with np.errstate(invalid="ignore", divide="ignore"):
        return total / count, count > 0


def level_window(header: Header, read_window: ReadWindow, factor: int, y0: int, x0: int, h: int, w: int,
                 check: Callable[[float], None]) -> np.ndarray:
    """Window (y0, x0, h, w) of the level of ``factor``, in source type, from full-resolution reads.

    Reads the source in strips of about 128 full-resolution pixels (a multiple of ``factor``) so memory
    stays bounded whatever the factor; ``check(fraction of this window done)`` runs after each read
    (progress and cancel).
    """
    step = factor * max(1, 128 // factor)
    out = np.empty((header.bands, h, w))
    valid = np.ones((header.bands, h, w), dtype=bool)
    fy0, fy1 = y0 * factor, min((y0 + h) * factor, header.rows)
    fx0, fx1 = x0 * factor, min((x0 + w) * factor, header.cols)
    reads = [(ry, rx) for ry in range(fy0, fy1, step) for rx in range(fx0, fx1, step)]
    for k, (ry, rx) in enumerate(reads):
        rh, rw = min(step, fy1 - ry), min(step, fx1 - rx)
        mean, ok = block_mean(read_window(ry, rx, rh, rw), factor, header.nodata)
        oy, ox = (ry - fy0) // factor, (rx - fx0) // factor
        out[:, oy:oy + mean.shape[1], ox:ox + mean.shape[2]] = mean
        valid[:, oy:oy + mean.shape[1], ox:ox + mean.shape[2]] = ok
        check((k + 1) / len(reads))
    nodata = header.nodata
    if nodata is None and not valid.all():  # only NaN sources have invalid samples without a nodata
        nodata = float("nan")
    # The cast the decoder uses: a valid sample never becomes nodata.
    return to_dtype(np.where(valid, out, 0), np.dtype(header.dtype), nodata, None if valid.all() else valid)


# The level windows a rate search keeps between its trials (they do not depend on the quantiser step) while
# they take at most this many bytes; beyond, each trial makes them again from the source.
KEEP_LEVELS_BYTES = 64 << 20


def build_section(header: Header, read_window: ReadWindow, coder, factors: tuple[int, ...],
                  progress: Callable[[float], None] | None = None, kept: dict | None = None) -> bytes:
    """The overview trailer for ``factors`` (b"" for none), coding each level's tiles with ``coder``.

    ``kept``: level windows of an earlier call for the same scene and header (a rate search's trials), by
    (factor, window); filled here while they fit in KEEP_LEVELS_BYTES.
    """
    if not factors:
        return b""
    levels, payloads = [], []
    done, total = 0, sum(TileGrid(*_size(header, f), header.tile_rows, header.tile_cols).n_tiles for f in factors)
    size = sum(math.prod(_size(header, f)) for f in factors) * header.bands * np.dtype(header.dtype).itemsize
    keep = kept is not None and size <= KEEP_LEVELS_BYTES
    for f in factors:
        lh = level_header(header, f)
        grid = TileGrid(lh.rows, lh.cols, header.tile_rows, header.tile_cols)
        for y0, x0, h, w in grid.windows():
            key = (f, y0, x0, h, w)
            raw = kept.get(key) if keep else None
            if raw is None:
                raw = level_window(header, read_window, f, y0, x0, h, w,
                                   lambda frac: progress((done + frac) / total) if progress else None)
                if keep:
                    kept[key] = raw
            payloads.append(encode_payload(raw, lh, coder))
            done += 1
        levels.append({"factor": f, "rows": lh.rows, "cols": lh.cols})
    return section.pack_section(levels, payloads)


def _size(header: Header, f: int) -> tuple[int, int]:
    return -(-header.rows // f), -(-header.cols // f)


class Level:
    """One stored level: its tiles read (CRC-checked) from the reader's trailer."""

    def __init__(self, reader: HsicReader, header: Header, factor: int, entries: list[tuple[int, int, int]]):
        self.reader, self.factor, self.entries = reader, factor, entries
        self.header = level_header(header, factor)
        self.grid = TileGrid(self.header.rows, self.header.cols, header.tile_rows, header.tile_cols)

    def read_tile(self, i: int) -> bytes:
        return section.read_tile(self.reader, self.entries[i], f"overview tile {i} of factor {self.factor}")


def read_levels(reader: HsicReader) -> dict[int, Level]:
    """The levels stored in a file's trailer, by factor ({} for files without overviews)."""
    h = reader.header
    levels = section.read_section(reader, lambda f: TileGrid(*_size(h, f), h.tile_rows, h.tile_cols).n_tiles)
    return {f: Level(reader, h, f, entries) for f, entries in levels}


class LevelDecoder:
    """Decodes windows of one stored level, with a small LRU cache of decoded tiles (all bands)."""

    def __init__(self, level: Level, codec, cache_tiles: int = 64):
        self.level, self.codec, self.header, self.grid = level, codec, level.header, level.grid
        self._cache: OrderedDict[int, np.ndarray] = OrderedDict()
        self._max = cache_tiles
        self._lock = threading.Lock()
        self.decoded_tiles = 0  # cache misses, for tests and stats

    def tile(self, i: int) -> np.ndarray:
        with self._lock:
            if i in self._cache:
                self._cache.move_to_end(i)
                return self._cache[i]
            _, _, h, w = self.grid.window(i)
            arr = self._cache[i] = decode_payload(self.level.read_tile(i), self.header, self.codec, h, w)
            self.decoded_tiles += 1
            while len(self._cache) > self._max:
                self._cache.popitem(last=False)
            return arr

    def read(self, yoff: int, xoff: int, ysize: int, xsize: int, bands: list[int]) -> np.ndarray:
        if any(not 0 <= b < self.header.bands for b in bands):  # a sidecar's band="0" must not read band -1
            raise InputError(f"bands {[b + 1 for b in bands]} are not all among 1..{self.header.bands}")
        out = np.empty((len(bands), ysize, xsize), dtype=self.header.dtype)
        for i in self.grid.tiles_touching(yoff, xoff, ysize, xsize):
            ty, tx, th, tw = self.grid.window(i)
            t = self.tile(i)
            y0, y1 = max(ty, yoff), min(ty + th, yoff + ysize)
            x0, x1 = max(tx, xoff), min(tx + tw, xoff + xsize)
            out[:, y0 - yoff:y1 - yoff, x0 - xoff:x1 - xoff] = t[bands, y0 - ty:y1 - ty, x0 - tx:x1 - tx]
        return out
