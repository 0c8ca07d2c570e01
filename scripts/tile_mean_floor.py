"""What the per-band tile means alone give: the floor a ``center`` codec must beat (docs/codecs.md).

Codecs built with ``center`` (engine.models.layers.TileMeans) send each tile's per-band means as
float16; a decoder that output only those means would reach the PSNR / SAM printed here, at the rate
of the means alone (2 bytes per band per tile, no header). Tiles of 128 x 128, as the pipeline's default.

    .venv/bin/python scripts/tile_mean_floor.py ../shared/data/hsi/test
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def mean_image(cube: np.ndarray, valid: np.ndarray, tile: int) -> np.ndarray:
    """Each tile replaced by its per-band means over valid samples, rounded to float16 and back."""
    out = np.empty(cube.shape, np.float64)
    for r in range(0, cube.shape[1], tile):
        for c in range(0, cube.shape[2], tile):
            block, ok = cube[:, r:r + tile, c:c + tile], valid[:, r:r + tile, c:c + tile]
            n = ok.sum((1, 2))
            m = np.where(n > 0, (block * ok).sum((1, 2)) / np.maximum(n, 1), 0.0)
            out[:, r:r + tile, c:c + tile] = m[:, None, None]
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", nargs="?", default=str(ROOT.parent / "shared/data/hsi/test"))
    ap.add_argument("--tile", type=int, default=128)
    args = ap.parse_args()

    from osgeo import gdal

    from engine.metrics import psnr, sam_deg
    from engine.normalise import normalisation, valid_mask, valid_range

    print("| scene | bands x rows x cols | means alone: bpppc | PSNR dB | SAM deg |")
    print("|---|---|---|---|---|")
    for path in sorted(Path(args.folder).glob("*.tif")):
        ds = gdal.Open(str(path))
        cube = ds.ReadAsArray().astype(np.float64)
        if cube.ndim == 2:
            cube = cube[None]
        valid = valid_mask(cube, ds.GetRasterBand(1).GetNoDataValue())
        # The codecs see normalised tiles and round the means there; rounding in those units.
        lo, hi = valid_range(cube, valid)
        offset, scale = normalisation(lo, hi, cube.shape[0])
        x = (cube - offset[0]) / scale[0]
        rec = mean_image(x, valid, args.tile).astype(np.float16).astype(np.float64) * scale[0] + offset[0]
        bands, rows, cols = cube.shape
        tiles = -(-rows // args.tile) * -(-cols // args.tile)
        bpppc = 16 * bands * tiles / (bands * rows * cols)
        print(f"| {path.stem} | {bands} x {rows} x {cols} | {bpppc:.4f} | {psnr(cube, rec, valid=valid):.2f} | "
              f"{sam_deg(cube, rec, valid=valid):.1f} |")


if __name__ == "__main__":
    main()
