"""What exact CPU decoding costs: per codec, time of one 128 x 128 x 224 tile with oneDNN on and off, and
whether its decode changes between 1 and 2 threads (and batch 1 vs 3) when oneDNN is on.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/bench_determinism.py --out docs/benchmarks/determinism.md

The tile is real EnMAP spectra (the bundled test sample) repeated to 128 x 128. Codecs whose
``exact_cpu_kernels`` is set run with oneDNN off in HSIC (engine/codecs/learned.py, onednn_off).
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
sys.path.insert(0, str(ROOT))


def _timed(f, repeats: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeats):
        t = time.perf_counter()
        out = f()
        times.append(time.perf_counter() - t)
    return float(np.median(times)), out


def main() -> None:
    import torch

    from engine.registry import get_codec, list_codecs
    from tests.engine.test_codecs import smooth_tile

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", default=None)
    args = p.parse_args()
    tile = np.tile(smooth_tile(224, 32, 32), (1, 4, 4))
    tiles = [tile, tile[:, ::-1].copy(), tile[:, :, ::-1].copy()]
    rows = []
    for info in list_codecs():
        codec = get_codec(info.id, device="cpu")
        cls = type(codec)
        rec = {"codec": info.id, "exact": cls.exact_cpu_kernels}
        for onednn in (True, False):
            cls.exact_cpu_kernels = not onednn  # the codec's own switch, for this measurement only
            torch.set_num_threads(1)
            codec.decode_tile(codec.encode_tile(tile), tile.shape)  # warm-up
            enc, data = _timed(lambda: codec.encode_tile(tile), args.repeats)
            dec, out1 = _timed(lambda: codec.decode_tile(data, tile.shape), args.repeats)
            torch.set_num_threads(2)
            out2 = codec.decode_tile(data, tile.shape)
            torch.set_num_threads(1)
            os.environ["HSIC_BATCH_TILES"] = "3"
            batch = codec.encode_tiles(tiles)
            del os.environ["HSIC_BATCH_TILES"]
            same_batch = batch == [codec.encode_tile(t) for t in tiles]
            key = "on" if onednn else "off"
            rec[key] = {"enc": enc, "dec": dec, "thread_diff": int((out1 != out2).sum()), "batch_same": same_batch}
        cls.exact_cpu_kernels = rec["exact"]
        rows.append(rec)
        print(rec, flush=True)
    lines = ["# Exact CPU decoding: what it costs", "",
             f"Command: `OMP_NUM_THREADS=2 python scripts/bench_determinism.py --repeats {args.repeats}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other work; torch "
             f"{torch.__version__}. One 128 x 128 x 224 tile (real EnMAP spectra), median of {args.repeats} "
             "runs with 1 thread. 'Decode differs 1 vs 2 threads': float32 samples of the codec output "
             "that differ between a decode with 1 and with 2 threads (0 = bit-identical). 'Batch bytes "
             "= single': encode_tiles of 3 tiles in one batch wrote the same bytes as 3 encode_tile calls.", "",
             "| codec | HSIC runs it with | oneDNN | encode s | decode s | decode differs 1 vs 2 threads "
             "| batch bytes = single |", "|---|---|---|---|---|---|---|"]
    for r in rows:
        for key in ("on", "off"):
            m = r[key]
            lines.append(f"| {r['codec']} | oneDNN {'off' if r['exact'] else 'on'} | {key} | {m['enc']:.3f} "
                         f"| {m['dec']:.3f} | {m['thread_diff']} | {'yes' if m['batch_same'] else 'no'} |")
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
