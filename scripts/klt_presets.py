"""The klt quality presets: the quantiser step of each quality, chosen on train/ scenes so that the median
true rate (bytes on disk) is about 0.05, 0.1, 0.25, 0.5 and 1 bpppc (engine/codecs/klt.py, STEPS).

Each train scene (its top-left --crop x --crop window, to keep the CPU time small) is compressed at a grid
of steps; per target rate, the step is interpolated in log-log between the grid points of the median
rate curve.

    nice .venv/bin/python scripts/klt_presets.py
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

TARGETS = (0.05, 0.1, 0.25, 0.5, 1.0)


def main() -> None:
    import numpy as np

    from engine.metrics import bpppc
    from engine.pipeline import SceneInfo, compress_scene
    from hsi_gdal.source import RasterSource

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/hsi/train"))
    ap.add_argument("--crop", type=int, default=128)
    a = ap.parse_args()
    steps = np.geomspace(2e-4, 0.05, 9)
    rates = []
    with tempfile.TemporaryDirectory() as tmp:
        for path in sorted(Path(a.data).glob("*.tif"))[::2]:  # every other scene: half the CPU time
            src = RasterSource(str(path))
            n = min(a.crop, src.info.rows, src.info.cols)
            cube = src.read_window(0, 0, n, n)
            info = SceneInfo(n, n, src.info.bands, src.info.dtype, src.info.nodata)
            row = []
            for s in steps:
                dst = os.path.join(tmp, "p.hsic")
                compress_scene(info, lambda y0, x0, h, w: cube[:, y0:y0 + h, x0:x0 + w], dst, "klt", step=float(s),
                               overviews=())
                row.append(bpppc(os.path.getsize(dst), n, n, info.bands))
            rates.append(row)
            print(path.stem, " ".join(f"{r:.3f}" for r in row), flush=True)
    med = np.median(np.array(rates), axis=0)
    print("steps ", " ".join(f"{s:.4g}" for s in steps))
    print("median", " ".join(f"{r:.3f}" for r in med))
    for t in TARGETS:  # rate falls as the step grows: interpolate log step against log rate
        s = np.exp(np.interp(np.log(t), np.log(med[::-1]), np.log(steps[::-1])))
        print(f"{t:g} bpppc: step {s:.3g}")


if __name__ == "__main__":
    main()
