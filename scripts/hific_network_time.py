"""Time of the installed hific-se / hific-3d networks alone (E, then G on the rounded latent) on one tile of
component planes, one thread, the two codecs interleaved (docs/codecs.md, the HiFiC_3D speed claim).

    OMP_NUM_THREADS=1 .venv/bin/python scripts/hific_network_time.py --quality 2
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    import torch

    from engine.registry import get_codec

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--size", type=int, default=128, help="tile rows and cols")
    ap.add_argument("--reps", type=int, default=10)
    a = ap.parse_args()
    torch.set_num_threads(1)
    models = {c: get_codec(c, a.quality, device="cpu").model.eval() for c in ("hific-se", "hific-3d")}
    x = torch.randn(1, next(iter(models.values())).components, a.size, a.size) * 0.1
    times = {c: {"E": [], "G": []} for c in models}
    with torch.no_grad():
        for rep in range(a.reps + 2):  # the first two warm up
            for c, m in models.items():
                t0 = time.perf_counter()
                y = m.g_a(x)
                t1 = time.perf_counter()
                m.g_s(torch.round(y))
                t2 = time.perf_counter()
                if rep >= 2:
                    times[c]["E"].append(t1 - t0)
                    times[c]["G"].append(t2 - t1)
    for c, t in times.items():
        print(c, ", ".join(f"{k} {1000 * sorted(v)[len(v) // 2]:.1f} ms" for k, v in t.items()))


if __name__ == "__main__":
    main()
