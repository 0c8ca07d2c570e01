"""Reads whose buffer differs from their window (zoomed-out or zoomed-in views), as GDAL does them.

GDAL asks a VRT pixel function for a window (xoff, yoff, xsize, ysize) but hands it a buffer of the
request's size (QGIS at any zoom but 1:1, ``gdal_translate -outsize``, ``ReadAsArray(buf_xsize=...)``).
The buffer is filled by nearest-neighbour sampling with GDAL's own rule (GDALRasterBand::IRasterIO,
GDAL 3.6), so a sidecar gives, pixel for pixel, what GDAL gives for the decoded GeoTIFF; averaging comes
from the stored overviews, which GDAL picks itself before calling the function. Only the tiles holding
sampled pixels are decoded.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.errors import InputError

EPS = 1e-10  # GDAL's nudge against rounding in nearest sampling (rasterio.cpp)

# read(yoff, xoff, ysize, xsize, bands) -> (bands, ysize, xsize): SceneDecoder.read, LevelDecoder.read
Read = Callable[[int, int, int, int, list], np.ndarray]


def nearest_indices(off: int, size: int, buf: int, limit: int) -> np.ndarray:
    """The source index each of ``buf`` buffer pixels takes over a window [off, off + size).

    GDAL's rule: index = floor((i + 0.5) * size / buf + off + 1e-10), clamped to [0, limit - 1].
    """
    inc = size / buf
    src = (np.arange(buf, dtype=np.float64) + 0.5) * inc + off + EPS
    return np.clip(np.floor(src), 0, limit - 1).astype(np.int64)


def _groups(indices: np.ndarray, tile: int) -> list[np.ndarray]:
    """Positions in ``indices`` grouped by the tile (of ``tile`` pixels) the index falls in."""
    tiles = indices // tile
    return [np.flatnonzero(tiles == t) for t in np.unique(tiles)]


def read_resampled(read: Read, grid, dtype, xoff: int, yoff: int, xsize: int, ysize: int,
                   buf_xsize: int, buf_ysize: int, bands: list[int]) -> np.ndarray:
    """(bands, buf_ysize, buf_xsize) sampled from the window by nearest neighbour, decoding only the tiles
    that hold a sampled pixel (``grid``: the decoder's TileGrid)."""
    if (buf_xsize, buf_ysize) == (xsize, ysize):
        return read(yoff, xoff, ysize, xsize, bands)
    rows = nearest_indices(yoff, ysize, buf_ysize, grid.rows)
    cols = nearest_indices(xoff, xsize, buf_xsize, grid.cols)
    out = np.empty((len(bands), buf_ysize, buf_xsize), dtype=dtype)
    col_groups = _groups(cols, grid.tile_cols)
    for ri in _groups(rows, grid.tile_rows):
        r = rows[ri]
        r0 = int(r.min())
        for ci in col_groups:
            c = cols[ci]
            c0 = int(c.min())
            # One read inside one tile: the span of the sampled rows and columns there.
            win = read(r0, c0, int(r.max()) - r0 + 1, int(c.max()) - c0 + 1, bands)
            out[:, ri[:, None], ci[None, :]] = win[:, (r - r0)[:, None], (c - c0)[None, :]]
    return out


def check_buffer(buf_xsize: int | None, buf_ysize: int | None, xsize: int, ysize: int) -> tuple[int, int]:
    """(buf_xsize, buf_ysize), the window's size where not given; InputError for a size below 1."""
    bx = xsize if buf_xsize is None else buf_xsize
    by = ysize if buf_ysize is None else buf_ysize
    for name, v in (("buf_xsize", bx), ("buf_ysize", by)):
        if not isinstance(v, (int, np.integer)) or isinstance(v, bool) or v < 1:
            raise InputError(f"{name} must be a positive integer, not {v!r}")
    return int(bx), int(by)
