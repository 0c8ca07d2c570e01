"""Scaling of ``hsic batch`` from 1 to 2 Dask workers on a few train/ scenes; appends a table row per run.

    python scripts/bench_batch.py --scenes 4 --out docs/benchmarks/batch.md

Each run compresses the same scenes into a fresh folder on a fresh LocalCluster of worker
processes (start-up of the cluster included, as a user sees it).
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hsi" / "train"))
    p.add_argument("--scenes", type=int, default=4)
    p.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    p.add_argument("--device", default="cpu")
    p.add_argument("--out", default=None)
    args = p.parse_args()
    from hsi_gdal.tools.batch import run_batch

    scenes = sorted(Path(args.data).glob("*.tif"))[:args.scenes]
    with tempfile.TemporaryDirectory() as tmp:
        src = Path(tmp) / "in"
        src.mkdir()
        for s in scenes:
            os.symlink(s, src / s.name)
        lines = []
        for n in args.workers:
            out = Path(tmp) / f"out{n}"
            t0 = time.perf_counter()
            recs = run_batch(src, out, workers=n, device=args.device)
            wall = time.perf_counter() - t0
            ok = [r for r in recs if r["status"] == "compressed"]
            lines.append(f"| {n} | {len(ok)} of {len(recs)} | {wall:.1f} | "
                         f"{sum(r['bytes'] for r in ok) * 8 / max(1e-9, sum(r['bytes'] * 8 / r['bpppc'] for r in ok)):.3f} |")
            shutil.rmtree(out)
    text = "\n".join(lines)
    print(text)
    if args.out:
        with open(args.out, "a") as f:
            f.write(f"\n`{' '.join(sys.argv)}` ({os.cpu_count()} CPUs, {len(scenes)} scenes)\n\n"
                    "| workers | files compressed | wall s | mean bpppc |\n|---|---|---|---|\n" + text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
