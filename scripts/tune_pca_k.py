"""Choose k (PCA components) per rate for the pca-jpeg2000 baseline, on the train/ scenes only.

    .venv/bin/python scripts/tune_pca_k.py [TRAIN_DIR]      # measure, then summarise
    .venv/bin/python scripts/tune_pca_k.py --summarise      # summarise the measured JSON again

Writes docs/benchmarks/pca_k_train.md and .json: the median PSNR over the train scenes for each target
rate and k (the median, because a large basis does not fit a small scene's budget at all: -inf there);
the best k per rate is what hsi_gdal/tools/baselines.py PCA_K holds (copied by hand, on purpose: the bench
must not depend on a tuning run, and test/ is never used to choose it).
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import numpy as np

from engine.errors import InputError
from hsi_gdal.tools import baselines
from hsi_gdal.gdal_env import open_raster
from hsi_gdal.evaluate import quality_metrics, rate_metrics

ROOT = Path(__file__).resolve().parent.parent


OUT = ROOT / "docs" / "benchmarks"


def main() -> int:
    if sys.argv[1:] == ["--summarise"]:
        rec = json.loads((OUT / "pca_k_train.json").read_text())
        table = {r: {k: [-math.inf if v is None else v for v in vals] for k, vals in byk.items()}
                 for r, byk in rec["psnr_db"].items()}
        return summarise(table, rec["data"], rec["scenes"])
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "hsi" / "train"
    scenes = sorted(data.glob("*.tif"))
    if not scenes or data.name != "train":
        print(f"need the train/ split (never test/), got {data}", file=sys.stderr)
        return 1
    table: dict[str, dict[str, list[float]]] = {}
    for scene in scenes:
        ds = open_raster(str(scene))
        ref, nodata = ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
        for rate in baselines.PCA_RATES:
            for k in baselines.PCA_K_CANDIDATES:
                with tempfile.TemporaryDirectory() as tmp:
                    try:
                        c = baselines.pca_jpeg2000(str(scene), tmp, rate, k=k)
                        psnr = quality_metrics(ref, c.decoded, nodata)["psnr_db"]
                        got = rate_metrics(c.n_bytes, ref.shape, ref.dtype)["bpppc"]
                    except InputError:  # the basis alone is over the budget
                        psnr, got = -math.inf, math.nan
                table.setdefault(str(rate), {}).setdefault(str(k), []).append(psnr)
                print(f"{scene.stem} rate {rate} k {k}: {got:.4f} bpppc {psnr:.2f} dB", file=sys.stderr, flush=True)
    return summarise(table, str(data), [s.stem for s in scenes])


def summarise(table: dict, data: str, scenes: list[str]) -> int:
    best = {}
    lines = [f"# pca-jpeg2000: k per rate, chosen on `{Path(data).name}/` ({len(scenes)} scenes)", "",
             "Median PSNR (dB, data-range peak) over the train scenes (-inf on a scene where the basis alone "
             "exceeds the rate budget; the median keeps a few such small scenes from ruling out a k).",
             "", "| target bpppc | " + " | ".join(f"k={k}" for k in baselines.PCA_K_CANDIDATES) + " | best k |",
             "|---|" + "---|" * (len(baselines.PCA_K_CANDIDATES) + 1)]
    for rate, by_k in table.items():
        means = {k: float(np.median(v)) for k, v in by_k.items()}
        best[rate] = int(max(means, key=means.get))
        lines.append(f"| {rate} | " + " | ".join(f"{means[str(k)]:.2f}" for k in baselines.PCA_K_CANDIDATES)
                     + f" | {best[rate]} |")
    lines += ["", f"Command: `.venv/bin/python scripts/tune_pca_k.py {data}`"]
    finite = {r: {k: [v if math.isfinite(v) else None for v in vals] for k, vals in byk.items()}
              for r, byk in table.items()}  # strict JSON: -inf (did not fit) is null
    (OUT / "pca_k_train.md").write_text("\n".join(lines) + "\n")
    (OUT / "pca_k_train.json").write_text(json.dumps({"data": data, "scenes": scenes, "best_k": best,
                                                      "psnr_db": finite}, indent=1))
    print(json.dumps(best))
    return 0


if __name__ == "__main__":
    sys.exit(main())
