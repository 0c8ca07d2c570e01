"""Rate and quality of every registered codec and quality on a folder of scenes (default: the test split).

    .venv/bin/python scripts/measure_codecs.py [DATA_DIR] > docs/benchmarks/codecs_test.md

Rates are true bpppc: bytes of each .hsic file written (header included) x 8 / (rows x cols x bands).
This is the table behind README's figures; `hsic bench` (issue 5) will replace it.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import hsi_gdal
from engine.registry import list_codecs

ROOT = Path(__file__).resolve().parent.parent


def main() -> int:
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else ROOT.parent / "shared" / "data" / "hsi" / "test"
    scenes = sorted(data.glob("*.tif"))
    if not scenes:
        print(f"no scenes in {data}", file=sys.stderr)
        return 1
    print(f"# Codecs on `{data.name}/` ({len(scenes)} scenes)\n")
    print("PSNR: data-range peak of the valid reference samples; SAM mean in degrees; rate from file bytes.\n")
    print("| codec | quality | scene | bands x rows x cols | bpppc | ratio | PSNR dB | PSNR band-peak dB | SSIM | SAM deg | encode s |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    with tempfile.TemporaryDirectory() as tmp:
        for info in list_codecs():
            for q in info.qualities:
                for scene in scenes:
                    out = str(Path(tmp) / f"{scene.stem}.hsic")
                    t0 = time.perf_counter()
                    hsi_gdal.Translate(out, str(scene), codec=info.id, quality=q, device="cpu")
                    dt = time.perf_counter() - t0
                    r = hsi_gdal.evaluate(str(scene), out, device="cpu")
                    b, h, w = r["shape"]
                    print(f"| {info.id} | {q} | {scene.stem} | {b} x {h} x {w} | {r['bpppc']:.3f} | "
                          f"{r['compression_ratio']:.1f} | {r['psnr_db']:.2f} | {r['psnr_band_peak_db']:.2f} | "
                          f"{r['ssim']:.4f} | {r['sam_deg']:.2f} | {dt:.1f} |", flush=True)
    print(f"\nCommand: `.venv/bin/python scripts/measure_codecs.py {data}` (CPU, this machine: 2 cores).")
    return 0


if __name__ == "__main__":
    sys.exit(main())
