"""CPU seconds per whole-scene decode of the seed codecs (docs/benchmarks/seed_decode_speed.md).

Compresses a crop of one scene (default 100 x 100, one tile) with each codec and quality, then, in this
warm process, times ``SceneDecoder(path, device="cpu").read()`` (codec construction included, as
``hsic bench``'s decode) in CPU seconds of the process (all threads), ``--reps`` times after ``--warm``
untimed decodes, and prints the median with the MB/s of source bytes it gives per CPU second.

    PYTHONPATH=$PWD nice .venv/bin/python scripts/bench_seed_decode.py SCENE.tif [--codecs ...]
    ... --profile hific-se:2     # cProfile of the warm decodes of one codec:quality instead
"""

from __future__ import annotations

import argparse
import cProfile
import os
import pstats
import statistics
import tempfile
import time


def main():
    from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
    from hsi_gdal.source import RasterSource

    ap = argparse.ArgumentParser()
    ap.add_argument("scene", help="a GeoTIFF (use a copy of a train scene: GDAL may write beside it)")
    ap.add_argument("--codecs", nargs="*", default=["hific-se", "mdim-drf"])
    ap.add_argument("--qualities", nargs="*", type=int, default=[1, 2, 3])
    ap.add_argument("--crop", type=int, default=100)
    ap.add_argument("--warm", type=int, default=2)
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--keep", help="a folder for the compressed files (reused when present)")
    ap.add_argument("--profile", help="codec:quality: print a cProfile of its warm decodes")
    ap.add_argument("--threads", type=int, help="torch's intra-op threads (default: torch's own). On cores "
                    "shared with other work, 2 threads spend most of their CPU time waiting for each other")
    a = ap.parse_args()
    if a.threads:
        import torch

        torch.set_num_threads(a.threads)

    src = RasterSource(a.scene)
    n = min(a.crop, src.info.rows, src.info.cols)
    cube = src.read_window(0, 0, n, n)
    info = SceneInfo(n, n, src.info.bands, src.info.dtype, src.info.nodata)
    mb = cube.nbytes / 1e6
    folder = a.keep or tempfile.mkdtemp()
    os.makedirs(folder, exist_ok=True)
    pairs = [tuple(a.profile.split(":"))] if a.profile else [(c, q) for c in a.codecs for q in a.qualities]
    for codec, q in pairs:
        q = int(q)
        path = os.path.join(folder, f"{codec}-q{q}-{n}.hsic")
        if not os.path.exists(path):
            compress_scene(info, lambda y0, x0, h, w: cube[:, y0:y0 + h, x0:x0 + w], path, codec, q,
                           device="cpu", overviews=())

        def decode():
            dec = SceneDecoder(path, device="cpu")
            try:
                return dec.read()
            finally:
                dec.close()

        for _ in range(a.warm):
            decode()
        if a.profile:
            prof = cProfile.Profile()
            prof.enable()
            for _ in range(a.reps):
                decode()
            prof.disable()
            pstats.Stats(prof).sort_stats("cumulative").print_stats(45)
            pstats.Stats(prof).sort_stats("tottime").print_stats(30)
            continue
        cpu, wall = [], []
        for _ in range(a.reps):
            c0, w0 = time.process_time(), time.perf_counter()
            decode()
            cpu.append(time.process_time() - c0)
            wall.append(time.perf_counter() - w0)
        c, w = statistics.median(cpu), statistics.median(wall)
        print(f"{codec} q{q}: {c * 1e3:7.1f} ms CPU ({mb / c:6.1f} MB/s per CPU s), wall {w * 1e3:7.1f} ms "
              f"({mb / w:6.1f} MB/s); {os.path.getsize(path)} bytes, {cube.shape}", flush=True)


if __name__ == "__main__":
    main()
