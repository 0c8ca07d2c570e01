"""Split a (bands, rows, cols) scene into fixed-size tiles and put decoded tiles back.

Codecs only ever see full ``tile_rows x tile_cols`` tiles: tiles that overhang the scene edge are
padded by repeating the last row/column (edge replication adds no false edges for a codec to spend
bits on). When stitching, only the valid (cropped) part of a tile is written back.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import numba
import numpy as np

from .arrays import kernel_ready
from .errors import InputError

__all__ = ["TileGrid", "extract_tile", "stitch_tile"]


def _positive_int(name: str, value: object) -> int:
    # bool is an int subclass, but True as a size is always a mistake.
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


@dataclass(frozen=True)
class TileGrid:
    """A row-major grid of ``tile_rows x tile_cols`` tiles covering a ``rows x cols`` scene."""

    rows: int
    cols: int
    tile_rows: int
    tile_cols: int

    def __post_init__(self) -> None:
        for name in ("rows", "cols", "tile_rows", "tile_cols"):
            # Store plain ints so that numpy integers do not leak into hashes/reprs.
            object.__setattr__(self, name, _positive_int(name, getattr(self, name)))

    @property
    def n_tiles_y(self) -> int:
        return -(-self.rows // self.tile_rows)

    @property
    def n_tiles_x(self) -> int:
        return -(-self.cols // self.tile_cols)

    @property
    def n_tiles(self) -> int:
        return self.n_tiles_y * self.n_tiles_x

    def window(self, i: int) -> tuple[int, int, int, int]:
        """``(y0, x0, h, w)`` of tile ``i``; ``h``/``w`` are cropped at the scene edge."""
        if isinstance(i, bool) or not isinstance(i, (int, np.integer)) or not 0 <= i < self.n_tiles:
            raise InputError(f"tile index must be an integer in [0, {self.n_tiles}), got {i!r}")
        ty, tx = divmod(int(i), self.n_tiles_x)
        y0, x0 = ty * self.tile_rows, tx * self.tile_cols
        return y0, x0, min(self.tile_rows, self.rows - y0), min(self.tile_cols, self.cols - x0)

    def windows(self) -> Iterator[tuple[int, int, int, int]]:
        """All tile windows in row-major order."""
        for i in range(self.n_tiles):
            yield self.window(i)

    def tiles_touching(self, yoff: int, xoff: int, ysize: int, xsize: int) -> list[int]:
        """Indices (ascending) of the tiles that intersect a pixel window inside the scene."""
        ysize, xsize = _positive_int("ysize", ysize), _positive_int("xsize", xsize)
        for name, off, size, extent in (("y", yoff, ysize, self.rows), ("x", xoff, xsize, self.cols)):
            bad_type = isinstance(off, bool) or not isinstance(off, (int, np.integer))
            if bad_type or off < 0 or off + size > extent:
                raise InputError(
                    f"window {name} range [{off!r}, {off!r}+{size}) is outside the scene (0..{extent})"
                )
        ty0, ty1 = yoff // self.tile_rows, (yoff + ysize - 1) // self.tile_rows
        tx0, tx1 = xoff // self.tile_cols, (xoff + xsize - 1) // self.tile_cols
        return [ty * self.n_tiles_x + tx for ty in range(ty0, ty1 + 1) for tx in range(tx0, tx1 + 1)]


@numba.njit(cache=True)
def _extract_kernel(cube, y0, x0, out):
    bands, rows, cols = cube.shape
    _, th, tw = out.shape
    for b in range(bands):
        for y in range(th):
            sy = min(y0 + y, rows - 1)  # clamp = edge replication
            for x in range(tw):
                out[b, y, x] = cube[b, sy, min(x0 + x, cols - 1)]


@numba.njit(cache=True)
def _stitch_kernel(out, tile, y0, x0, h, w):
    for b in range(tile.shape[0]):
        for y in range(h):
            for x in range(w):
                out[b, y0 + y, x0 + x] = tile[b, y, x]


def _check_cube(a: object, grid: TileGrid, what: str) -> np.ndarray:
    if not isinstance(a, np.ndarray) or a.ndim != 3 or a.shape[1:] != (grid.rows, grid.cols):
        shape = getattr(a, "shape", type(a).__name__)
        raise InputError(f"{what} must be a (bands, {grid.rows}, {grid.cols}) array, got {shape}")
    return a


def extract_tile(cube: np.ndarray, grid: TileGrid, i: int) -> np.ndarray:
    """Tile ``i`` of ``cube`` (bands, rows, cols) as a full-size float32 (bands, tile_rows, tile_cols).

    Samples beyond the scene edge repeat the last row/column of the scene.
    """
    cube = kernel_ready(_check_cube(cube, grid, "cube"), "cube")
    y0, x0, _, _ = grid.window(i)
    out = np.empty((cube.shape[0], grid.tile_rows, grid.tile_cols), dtype=np.float32)
    _extract_kernel(cube, y0, x0, out)
    return out


def stitch_tile(out: np.ndarray, tile: np.ndarray, grid: TileGrid, i: int) -> None:
    """Write the valid part of full-size ``tile`` (bands, tile_rows, tile_cols) into ``out`` in place.

    ``out`` must be float32 or float64 (no silent rounding into integer rasters).
    """
    _check_cube(out, grid, "out")
    if out.dtype not in (np.float32, np.float64) or not out.dtype.isnative:
        raise InputError(f"out must be float32 or float64, got dtype {out.dtype}")
    if not out.flags.writeable:
        raise InputError("out must be writeable")
    if not isinstance(tile, np.ndarray) or tile.shape != (out.shape[0], grid.tile_rows, grid.tile_cols):
        shape = getattr(tile, "shape", type(tile).__name__)
        raise InputError(
            f"tile must be a ({out.shape[0]}, {grid.tile_rows}, {grid.tile_cols}) array, got {shape}"
        )
    tile = kernel_ready(tile, "tile")
    y0, x0, h, w = grid.window(i)
    _stitch_kernel(out, tile, y0, x0, h, w)
