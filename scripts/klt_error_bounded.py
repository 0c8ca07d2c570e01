"""Which base codes cheapest under an error bound: cae1d q1 (the error-bounded default before klt) or klt
at each quality preset, as the predictor of the residual (engine/residual.py). Train scenes only.

For each scene (a --crop x --crop window, to keep the CPU time small): the true bpppc of the error-bounded
file for each base and bound E, and the largest error measured (must be <= E).

    nice .venv/bin/python scripts/klt_error_bounded.py --out docs/benchmarks/klt_error_bounded.json
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SCENES = ("enmap_potsdam_a", "aviris_losangeles_urban_1", "hydice_urban", "aviris_moffett_normalised")


def main() -> None:
    import numpy as np

    from engine.metrics import bpppc
    from engine.normalise import valid_mask
    from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
    from hsi_gdal.source import RasterSource

    ap = argparse.ArgumentParser()
    ap.add_argument("--data", default=str(ROOT.parent / "shared/data/hsi/train"))
    ap.add_argument("--crop", type=int, default=128)
    ap.add_argument("--bounds", type=float, nargs="+", default=[0, 2, 8, 32])
    ap.add_argument("--float-scale", type=float, default=1e-4)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    bases = [("cae1d", 1)] + [("klt", q) for q in (1, 2, 3, 4, 5)]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name in SCENES:
            src = RasterSource(os.path.join(a.data, name + ".tif"))
            full = src.info
            n = min(a.crop, full.rows, full.cols)
            cube = src.read_window(0, 0, n, n)
            info = SceneInfo(n, n, full.bands, full.dtype, full.nodata)
            scale = a.float_scale if full.dtype.startswith("float") else 1.0
            valid = valid_mask(cube, full.nodata)
            for e in a.bounds:
                e = e * scale
                rec = {"scene": name, "max_abs_error": e, "bpppc": {}}
                for codec, q in bases:
                    dst = os.path.join(tmp, "e.hsic")
                    compress_scene(info, lambda y0, x0, h, w: cube[:, y0:y0 + h, x0:x0 + w], dst, codec, q,
                                   device="cpu", max_abs_error=e, overviews=())
                    d = SceneDecoder(dst, device="cpu")
                    err = float(np.abs(d.read().astype(np.float64) - cube)[valid].max())
                    d.close()
                    assert err <= e, (name, codec, q, e, err)
                    rec["bpppc"][f"{codec}-q{q}"] = round(bpppc(os.path.getsize(dst), n, n, full.bands), 4)
                rows.append(rec)
                print(json.dumps(rec), flush=True)
    from engine.codecs.klt import STEPS

    Path(a.out).write_text(json.dumps({"crop": a.crop, "klt_steps": {f"klt-q{q}": s for q, s in STEPS.items()},
                                       "rows": rows}, indent=1) + "\n")


if __name__ == "__main__":
    main()
