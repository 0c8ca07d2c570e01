"""The "Measured on the test scenes" table of docs/codecs.md, from the committed bench run.

    .venv/bin/python scripts/codecs_table.py        # prints the Markdown table (docs/benchmarks/bench.json)

One row per learned codec and quality (per target rate for a continuous-rate codec): enmap_potsdam_c's
bpppc / PSNR / SAM, and the mean over the scenes that codec and setting ran on (CPU records).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "docs" / "benchmarks" / "bench.json"
BASELINES = {"jpeg2000", "pca-jpeg2000", "deflate"}
SCENE = "enmap_potsdam_c"


def setting(r: dict) -> str:
    return f"{r['target_bpppc']} bpppc" if "target_bpppc" in r else str(r["quality"])


def triple(recs: list[dict]) -> str:
    return " / ".join(f"{np.mean([r[k] for r in recs]):.{d}f}" for k, d in
                      (("bpppc", 3), ("psnr_db", 2), ("sam_deg", 2)))


def table(bench: dict) -> str:
    cpu = [r for r in bench["records"] if r["device"] == "cpu" and r["method"] not in BASELINES]
    rows = {}
    for r in cpu:
        rows.setdefault((r["method"], setting(r)), []).append(r)
    n_scenes = len({r["scene"] for r in bench["records"]})
    lines = [f"| codec | quality | {SCENE}: bpppc / PSNR dB / SAM deg | "
             f"{n_scenes} test scenes, mean: bpppc / PSNR dB / SAM deg |", "|---|---|---|---|"]

    def order(key):
        codec, s = key
        return codec, float(s.split()[0])

    for codec, s in sorted(rows, key=order):
        recs = rows[(codec, s)]
        one = [r for r in recs if r["scene"] == SCENE]
        lines.append(f"| `{codec}` | {s} | {triple(one) if one else 'n/a'} | {triple(recs)} "
                     f"({len(recs)} scenes) |")
    return "\n".join(lines)


def main() -> int:
    print(table(json.loads(BENCH.read_text())))
    return 0


if __name__ == "__main__":
    sys.exit(main())
