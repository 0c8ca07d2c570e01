"""``band-cluster`` encode / decode time against the number of bands, on one 64 x 64 tile.

The tile is a 64 x 64 crop of a real EnMAP training scene (normalised as the compressor does),
resampled along the spectrum to each band count. Each time is the minimum over ``--repeats`` runs
(the minimum is the least disturbed by other processes on a shared machine), at one torch thread.
A least-squares line time = a + b * bands is fitted; its R^2 and the time per band at each count
show whether the cost is linear.

    OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/bench_band_cluster_scaling.py \\
        --out docs/benchmarks/band_cluster_scaling.md

(``HSIC_TRAIN_DIR`` overrides the training folder, for a worktree that is not beside ../shared.)
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN = Path(os.environ.get("HSIC_TRAIN_DIR", ROOT.parent / "shared" / "data" / "hsi" / "train"))
SCENE = "enmap_potsdam_a.tif"


def tile(bands: int) -> np.ndarray:
    from osgeo import gdal

    from engine.training import prepare_scene

    if not (TRAIN / SCENE).is_file():
        sys.exit(f"{TRAIN / SCENE} not found (set HSIC_TRAIN_DIR to the training folder)")
    ds = gdal.Open(str(TRAIN / SCENE))
    x, _ = prepare_scene(ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue())
    x = x[:, :64, :64]
    src = np.linspace(0, 1, x.shape[0])
    flat = x.reshape(x.shape[0], -1)
    out = np.stack([np.interp(np.linspace(0, 1, bands), src, flat[:, i]) for i in range(flat.shape[1])], 1)
    return out.reshape(bands, 64, 64).astype(np.float32)


def best_of(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--bands", type=int, nargs="+", default=[32, 64, 128, 224, 448])
    p.add_argument("--quality", type=int, default=2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default="docs/benchmarks/band_cluster_scaling.md")
    args = p.parse_args()
    sys.path.insert(0, str(ROOT))
    import torch

    torch.set_num_threads(1)
    from engine.registry import get_codec

    codec = get_codec("band-cluster", args.quality, device="cpu")
    rows = []
    for bands in args.bands:
        x = tile(bands)
        data = codec.encode_tile(x)
        enc = best_of(lambda: codec.encode_tile(x), args.repeats)
        dec = best_of(lambda: codec.decode_tile(data, x.shape), args.repeats)
        parts = [e - s for s, e in codec.model.intervals(bands)]
        rows.append((bands, enc, dec, len(data) * 8 / x.size, parts))
        print(f"{bands} bands: encode {enc:.3f} s, decode {dec:.3f} s", flush=True)

    b = np.array([r[0] for r in rows], float)
    lines = [
        "# `band-cluster`: time against the number of bands",
        "",
        "Command: `OMP_NUM_THREADS=1 PYTHONPATH=. .venv/bin/python scripts/bench_band_cluster_scaling.py "
        f"--quality {args.quality} --repeats {args.repeats}`  ",
        f"Run {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())} on {platform.machine()}, "
        f"{os.cpu_count()} CPU cores shared with other jobs, one torch thread, torch {torch.__version__}.",
        "",
        f"One 64 x 64 tile: a crop of {SCENE} (training data), resampled along the spectrum to each band "
        "count; times are the minimum of the repeats of `encode_tile` / `decode_tile` (the codec alone, "
        "no file I/O). Band counts without a stored partition use the fallback (the nearest stored "
        "partition, rescaled).",
        "",
        "| bands | bands per interval | encode s | decode s | encode ms / band | decode ms / band | bpppc |",
        "|---|---|---|---|---|---|---|",
    ]
    for bands, enc, dec, bpppc, parts in rows:
        lines.append(f"| {bands} | {'/'.join(map(str, parts))} | {enc:.3f} | {dec:.3f} | "
                     f"{1000 * enc / bands:.2f} | {1000 * dec / bands:.2f} | {bpppc:.3f} |")
    lines.append("")
    for name, k in (("encode", 1), ("decode", 2)):
        t = np.array([r[k] for r in rows])
        slope, icpt = np.polyfit(b, t, 1)
        r2 = 1 - ((t - (icpt + slope * b)) ** 2).sum() / ((t - t.mean()) ** 2).sum()
        lines.append(f"- {name}: least-squares line t = {icpt:.3f} s + {1000 * slope:.2f} ms x bands, "
                     f"R^2 = {r2:.4f}.")
    lines.append("")
    Path(args.out).write_text("\n".join(lines))
    print("\n".join(lines))


if __name__ == "__main__":
    main()
