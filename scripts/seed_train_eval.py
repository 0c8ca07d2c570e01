"""Rate and PSNR of weights files on train/ crops: how the seed codecs' variants are picked (never on test/).

Each weights file (a codec's, e.g. from ``hsic train``) compresses a --crop x --crop window of each chosen
train scene through the whole pipeline (true rate: bytes on disk) and is decoded back from the file.

    nice .venv/bin/python scripts/seed_train_eval.py --codec s2cnet --quality 2 runs/s2cnet-q2.pt [...]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

# One scene per sensor family that has several (the crops hold 128 x 128 x B).
SCENES = ("enmap_potsdam_a", "aviris_moffett_normalised", "hydice_urban", "aviris_losangeles_urban_1")


def main() -> None:
    import numpy as np

    from engine.metrics import bpppc, psnr
    from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
    from hsi_gdal.source import RasterSource

    ap = argparse.ArgumentParser()
    ap.add_argument("weights", nargs="*", help="weights files (none: the installed ones)")
    ap.add_argument("--codec", required=True)
    ap.add_argument("--quality", type=int, required=True)
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/hsi/train"),
                    help="train scenes (a copy: GDAL may write .aux.xml beside what it opens)")
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--scenes", nargs="*", default=list(SCENES))
    a = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for w in a.weights or [None]:
            rows = []
            for name in a.scenes:
                src = RasterSource(str(Path(a.data) / f"{name}.tif"))
                n = min(a.crop, src.info.rows, src.info.cols)
                cube = src.read_window(0, 0, n, n)
                info = SceneInfo(n, n, src.info.bands, src.info.dtype, src.info.nodata)
                dst = os.path.join(tmp, "p.hsic")
                compress_scene(info, lambda y0, x0, h, ww: cube[:, y0:y0 + h, x0:x0 + ww], dst, a.codec,
                               a.quality, device="cpu", weights=w, overviews=())
                dec = SceneDecoder(dst, device="cpu", weights=w)
                out = dec.read()
                dec.close()
                valid = None if info.nodata is None else cube != info.nodata
                rows.append((bpppc(os.path.getsize(dst), n, n, info.bands), psnr(cube, out, valid=valid)))
                print(f"{w or 'installed'} {name}: {rows[-1][0]:.3f} bpppc {rows[-1][1]:.2f} dB", flush=True)
            r = np.array(rows)
            print(f"{w or 'installed'} MEAN: {r[:, 0].mean():.3f} bpppc {r[:, 1].mean():.2f} dB", flush=True)


if __name__ == "__main__":
    main()
