"""Why the seed codecs sit on a fixed Haar base (engine/models/stage_base.py): what the base alone gives.

On the top-left crop of a train scene: the scene's KLT (K leading components, in orthonormal units),
a 2-level orthonormal Haar on each component plane, one uniform quantiser step for every subband, and
the ideal zeroth-order entropy of each quantised subband (what a per-channel learned prior can at best
reach on this crop; optimistic on small crops). No bits are written: a bound, not a codec.

    .venv/bin/python scripts/stage_base_headroom.py enmap_potsdam_a --crop 64
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def haar(p: np.ndarray) -> tuple[np.ndarray, list[np.ndarray]]:
    """One level: the low band and the three detail bands (orthonormal)."""
    a, b, c, d = p[0::2, 0::2], p[0::2, 1::2], p[1::2, 0::2], p[1::2, 1::2]
    return (a + b + c + d) / 2, [(a - b + c - d) / 2, (a + b - c - d) / 2, (a - b - c + d) / 2]


def entropy_bits(q: np.ndarray) -> float:
    _, counts = np.unique(q, return_counts=True)
    return float(-(counts * np.log2(counts / counts.sum())).sum())


def main() -> None:
    from hsi_gdal.source import RasterSource

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("scene", help="a train scene's name (never a test scene)")
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/hsi/train"))
    ap.add_argument("--crop", type=int, default=64, help="a multiple of 4")
    a = ap.parse_args()
    src = RasterSource(str(Path(a.data) / f"{a.scene}.tif"))
    n = min(a.crop, src.info.rows, src.info.cols) // 4 * 4
    cube = src.read_window(0, 0, n, n).astype(np.float64)
    if src.info.nodata is not None:
        cube = cube[~(cube == src.info.nodata).all((1, 2))]  # all-nodata bands (EnMAP's) out
    x = (cube - cube.min()) / (cube.max() - cube.min())
    bands = x.shape[0]
    flat = x.reshape(bands, -1)
    mean = flat.mean(1, keepdims=True)
    basis = np.linalg.eigh(np.cov(flat))[1][:, ::-1]
    for k in (8, 16, 24):
        comps = (basis[:, :k].T @ (flat - mean)).reshape(k, n, n)
        for step in (0.02, 0.04, 0.08, 0.16):
            bits = 0.0
            for plane in comps:
                low, details = haar(plane)
                low2, details2 = haar(low)
                bits += sum(entropy_bits(np.round(s / step)) for s in [low2, *details2, *details])
            rec = mean + basis[:, :k] @ (np.round(comps / step) * step).reshape(k, -1)
            psnr = 10 * np.log10(1 / ((rec - flat) ** 2).mean())
            print(f"{a.scene} K={k} step={step}: {psnr:.2f} dB at {bits / flat.size:.3f} bpppc")


if __name__ == "__main__":
    main()
