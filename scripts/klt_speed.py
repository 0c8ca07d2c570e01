"""Decode speed of the KLT codec core on a 512 x 512 x 224 mosaic of a train/ EnMAP scene (128 x 128 tiles).

    .venv/bin/python scripts/klt_speed.py [--bpppc 0.25] [--threads 2]

Times, after a warm-up decode (Numba's compiled code comes from its cache in a real process): stage parsing,
entropy decoding of every tile and reconstruction of every band, tiles spread over a thread pool
(the kernels release the GIL). On a shared, loaded machine the wall time says little: the per-tile CPU
times (thread CPU, min over --reps) and their sum / threads, the time on idle cores, are printed too.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import klt_codec as kc  # noqa: E402
from engine.klt import SpectralStage  # noqa: E402
from scripts.klt_scenes import load_scene  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hsi",
                                                    "train", "enmap_potsdam_a.tif"))
    ap.add_argument("--step", type=float, default=0.004)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--model", default=kc.DEFAULT_MODEL)
    ap.add_argument("--reps", type=int, default=3)
    a = ap.parse_args(argv)
    x, valid = load_scene(a.scene)[:2]
    reps = (1, -(-512 // x.shape[1]), -(-512 // x.shape[2]))
    # mirror alternate copies so that the mosaic has no seams a predictor could exploit unfairly
    big = np.tile(x, reps)[:, :512, :512].copy()
    vbig = np.tile(valid, reps)[:, :512, :512].copy()
    t0 = time.perf_counter()
    sb, blobs = kc.encode_scene(big, vbig, a.step, a.model)
    enc = time.perf_counter() - t0
    n = kc.scene_bytes(sb, blobs, 0)
    wins = list(kc.tile_windows(512, 512, 128))

    def decode():
        stage = SpectralStage.from_bytes(sb)
        out = np.empty((stage.bands, 512, 512), np.float32)

        def one(i):
            a0, b0, hh, ww = wins[i]
            out[:, a0:a0 + hh, b0:b0 + ww] = kc.reconstruct(kc.decode_tile(blobs[i], stage, hh, ww), stage)

        with ThreadPoolExecutor(a.threads) as pool:
            list(pool.map(one, range(len(wins))))
        return out

    decode()
    t0 = time.perf_counter()
    decode()
    dec = time.perf_counter() - t0
    stage = SpectralStage.from_bytes(sb)
    ent, rec = [], []
    for i, (a0, b0, hh, ww) in enumerate(wins):
        te, tr = [], []
        for _ in range(a.reps):
            t0 = time.thread_time()
            y = kc.decode_tile(blobs[i], stage, hh, ww)
            t1 = time.thread_time()
            kc.reconstruct(y, stage)
            te.append(t1 - t0)
            tr.append(time.thread_time() - t1)
        ent.append(min(te))
        rec.append(min(tr))
    cpu = sum(ent) + sum(rec)
    print(f"512 x 512 x {big.shape[0]}: {n * 8 / big.size:.3f} bpppc (k={stage.k}, model {a.model}), "
          f"encode {enc:.2f} s, decode {dec:.2f} s wall with {a.threads} threads "
          f"(load average {os.getloadavg()[0]:.1f})")
    print(f"per 128 x 128 tile, CPU: entropy decode {np.mean(ent):.3f} s, reconstruction {np.mean(rec):.3f} s; "
          f"all tiles {cpu:.2f} CPU s = {cpu / a.threads:.2f} s on {a.threads} idle cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
