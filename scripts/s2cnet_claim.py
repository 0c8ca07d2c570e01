"""Check S2C-Net's claim on our test scenes: below 1 bpppc it beats its spectral part alone (``cae1d``)
and a spatial-only codec (``bmshj2018-hyperprior``).

Reads two ``hsic bench`` JSON files (the committed run with the baselines, and a run with ``s2cnet``;
same scenes, same metrics) and prints a Markdown comparison: per scene, each s2cnet point below 1 bpppc
next to each baseline's PSNR and SAM interpolated at the same bpppc (linear in log rate between the
baseline's measured points of all its qualities; "out of range" where the baseline has no points on both
sides), and each baseline's lowest-rate point. No BD-rate: over the nearly flat PSNR ranges of these
curves the polynomial fit extrapolates wildly.

    python scripts/s2cnet_claim.py docs/benchmarks/bench.json docs/benchmarks/bench.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

BASELINES = ("cae1d", "bmshj2018-hyperprior")


def curves(records, method):
    out = {}
    for r in records:
        if r["method"] == method and r["bpppc"] < 1.0 and r["psnr_db"] is not None:
            out.setdefault(r["scene"], []).append((r["bpppc"], r["psnr_db"], r["sam_deg"]))
    return {k: sorted(v) for k, v in out.items()}


def at_rate(points, rate):
    """(PSNR, SAM) interpolated at ``rate`` in log rate, or None outside the measured range."""
    if not points:
        return None
    r = np.log([p[0] for p in points])
    if np.log(rate) < r.min() or np.log(rate) > r.max():
        return None
    # Several qualities can land on one rate: np.interp needs increasing x, and a sort keeps it so.
    return tuple(float(np.interp(np.log(rate), r, [p[k] for p in points])) for k in (1, 2))


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("baseline_json")
    p.add_argument("s2cnet_json")
    args = p.parse_args()

    base = json.loads(Path(args.baseline_json).read_text())["records"]
    new = json.loads(Path(args.s2cnet_json).read_text())["records"]
    s2c = curves(new, "s2cnet")
    refs = {m: curves(base, m) for m in BASELINES}
    print("| scene | s2cnet q: bpppc, PSNR dB, SAM deg | " +
          " | ".join(f"{m} at that bpppc: PSNR, SAM" for m in BASELINES) + " |")
    print("|---|---|" + "---|" * len(BASELINES))
    for scene, pts in sorted(s2c.items()):
        for rate, psnr, sam in pts:
            cells = []
            for m in BASELINES:
                v = at_rate(refs[m].get(scene, []), rate)
                cells.append("out of range" if v is None else f"{v[0]:.2f}, {v[1]:.2f}")
            print(f"| {scene} | {rate:.3f}, {psnr:.2f}, {sam:.2f} | " + " | ".join(cells) + " |")
    print()
    print("| scene | " + " | ".join(f"{m}: its lowest-rate point (bpppc, PSNR, SAM)" for m in BASELINES) + " |")
    print("|---|" + "---|" * len(BASELINES))
    for scene in sorted(s2c):
        cells = []
        for m in BASELINES:
            ref = refs[m].get(scene, [])
            cells.append("none below 1 bpppc" if not ref else "{:.3f}, {:.2f}, {:.2f}".format(*ref[0]))
        print(f"| {scene} | " + " | ".join(cells) + " |")

if __name__ == "__main__":
    main()
