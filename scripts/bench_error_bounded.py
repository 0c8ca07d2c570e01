"""Rates of the error-bounded mode against lossless DEFLATE and the plain learned codec.

For each scene of --data: the true bpppc (every byte written) of the DEFLATE GeoTIFF baseline
(lossless, hsi_gdal/tools/baselines.py), of plain cae1d at each quality, and of cae1d + residual
(``max_abs_error`` E) at each quality for each E, with the largest absolute error actually measured on
the valid samples (which must be <= E). Integer scenes use E in --bounds (source units); float scenes
hold reflectance or radiance in units ~10^4 times larger per step, so they use E x --float-scale.

    OMP_NUM_THREADS=1 nice -n 5 python scripts/bench_error_bounded.py --out docs/benchmarks/error_bounded.json

Writes the JSON record (rewritten after every scene) and prints a Markdown table per scene.

``--residual-alone`` measures instead, for reference, the residual section alone with a zero learned
reconstruction (the same coder as plain spectral DPCM; not a mode HSIC offers): how much the learned
part helps the residual, against what it costs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def measure(src, info, dst: str, quality: int, e: float | None) -> dict:
    import numpy as np

    from engine.metrics import bpppc
    from engine.normalise import valid_mask
    from engine.pipeline import SceneDecoder, compress_scene

    t0 = time.perf_counter()
    compress_scene(info, src.read_window, dst, "cae1d", quality, device="cpu", max_abs_error=e)
    enc = time.perf_counter() - t0
    t0 = time.perf_counter()
    dec = SceneDecoder(dst, device="cpu", cache_bytes=0)
    try:
        out = dec.read()
    finally:
        dec.close()
    dt = time.perf_counter() - t0
    ref = src.read_window(0, 0, info.rows, info.cols)
    valid = valid_mask(ref, info.nodata)
    err = float(np.abs(out.astype(np.float64) - ref.astype(np.float64))[valid].max())
    exact = bool(np.array_equal(out.view(np.uint8), ref.view(np.uint8)))
    rec = {"quality": quality, "max_abs_error": e, "bytes": os.path.getsize(dst),
           "bpppc": bpppc(os.path.getsize(dst), info.rows, info.cols, info.bands),
           "measured_max_abs_error": err, "bit_exact": exact, "encode_s": round(enc, 2), "decode_s": round(dt, 2)}
    if e is not None and err > e:
        raise SystemExit(f"bound broken: {rec}")
    os.remove(dst)
    return rec


def run_scene(path: Path, bounds: list[float], float_scale: float, qualities: list[int], bounded_qualities: list[int],
              folder: str) -> dict:
    from hsi_gdal.tools.baselines import deflate
    from hsi_gdal.source import RasterSource

    src = RasterSource(str(path))
    info = src.info
    scale = float_scale if info.dtype.startswith("float") else 1.0
    sub = os.path.join(folder, path.stem + "-deflate")
    os.makedirs(sub)
    coded = deflate(str(path), sub)
    from engine.metrics import bpppc

    rec = {"scene": path.name, "shape": [info.bands, info.rows, info.cols], "dtype": info.dtype,
           "nodata": info.nodata, "bound_scale": scale,
           "deflate_bpppc": bpppc(coded.n_bytes, info.rows, info.cols, info.bands), "plain": [], "bounded": []}
    dst = os.path.join(folder, path.stem + ".hsic")
    for q in qualities:
        rec["plain"].append(measure(src, info, dst, q, None))
    for q in bounded_qualities:
        for e in bounds:
            rec["bounded"].append(measure(src, info, dst, q, e * scale))
            print(f"{path.name} q{q} E={e * scale:g}: {rec['bounded'][-1]['bpppc']:.3f} bpppc", file=sys.stderr,
                  flush=True)
    return rec


def residual_alone(path: Path, bounds: list[float], float_scale: float) -> dict:
    """bpppc of residual sections (one tile = the scene) predicted without a learned part."""
    import numpy as np

    from engine import residual
    from engine.normalise import valid_mask
    from hsi_gdal.source import RasterSource

    src = RasterSource(str(path))
    info = src.info
    x = src.read_window(0, 0, info.rows, info.cols)
    valid = valid_mask(x, info.nodata)
    pred = np.where(valid, np.zeros_like(x), x)
    scale = float_scale if info.dtype.startswith("float") else 1.0
    return {"scene": path.name, "bpppc": {f"{e * scale:g}": len(residual.encode_section(
        x, pred, valid, e * scale, lambda r: None)) * 8 / x.size for e in bounds}}


def table(rec: dict, bounds: list[float]) -> str:
    qs = sorted({b["quality"] for b in rec["bounded"]})
    lines = [f"**{rec['scene']}** ({rec['dtype']}, {' x '.join(map(str, rec['shape']))}): DEFLATE lossless "
             f"{rec['deflate_bpppc']:.3f} bpppc; plain cae1d " +
             ", ".join(f"q{p['quality']} {p['bpppc']:.3f} (max err {p['measured_max_abs_error']:.4g})"
                       for p in rec["plain"]), "",
             "| E | " + " | ".join(f"cae1d q{q} + residual" for q in qs) + " | best vs DEFLATE | max err measured |",
             "|---|" + "---|" * (len(qs) + 2)]
    for e in bounds:
        e = e * rec["bound_scale"]
        rows = [b for b in rec["bounded"] if b["max_abs_error"] == e]
        best = min(r["bpppc"] for r in rows)
        lines.append(f"| {e:g} | " + " | ".join(f"{r['bpppc']:.3f}" for r in rows)
                     + f" | {best / rec['deflate_bpppc']:.2f} | {max(r['measured_max_abs_error'] for r in rows):.4g} |")
    return "\n".join(lines)


def summary(result: dict, alone: dict | None = None) -> str:
    """One table: per scene DEFLATE, plain cae1d, and the cheapest cae1d + residual per E (its quality)."""
    bounds = result["bounds"]
    ref = {r["scene"]: r["bpppc"] for r in (alone or {}).get("residual_alone", [])}
    head = ["scene", "type", "DEFLATE (lossless)", "cae1d q1 / q2 / q3 (lossy)"] + [f"E={e:g}" for e in bounds]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for rec in result["scenes"]:
        cells = [rec["scene"].replace(".tif", ""), rec["dtype"], f"{rec['deflate_bpppc']:.2f}",
                 " / ".join(f"{p['bpppc']:.2f}" for p in rec["plain"])]
        for e in bounds:
            e = e * rec["bound_scale"]
            rows = [b for b in rec["bounded"] if b["max_abs_error"] == e]
            best = min(rows, key=lambda b: b["bpppc"])
            alone_rate = ref.get(rec["scene"], {}).get(f"{e:g}")
            cells.append(f"**{best['bpppc']:.2f}** (q{best['quality']})"
                         + (f" [{alone_rate:.2f}]" if alone_rate is not None else ""))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default=str(ROOT.parent / "shared" / "data" / "hsi" / "test"))
    p.add_argument("--bounds", type=float, nargs="+", default=[0, 1, 4, 16, 64])
    p.add_argument("--float-scale", type=float, default=1e-4)
    p.add_argument("--qualities", type=int, nargs="+", default=[1, 2, 3], help="plain cae1d qualities")
    p.add_argument("--bounded-qualities", type=int, nargs="+", default=[2],
                   help="qualities of the learned part under the residual (default: 2, cae1d's default)")
    p.add_argument("--scenes", nargs="*", default=None, help="file names (default: every *.tif)")
    p.add_argument("--out", default=None, help="JSON record")
    p.add_argument("--residual-alone", action="store_true", help="only the reference without a learned part")
    p.add_argument("--summary", nargs="+", metavar="JSON",
                   help="print the summary table of a run's JSON (and of a --residual-alone JSON), then exit")
    args = p.parse_args(argv)
    if args.summary:
        runs = [json.loads(Path(f).read_text()) for f in args.summary]
        main_run = next(r for r in runs if "scenes" in r)
        print(summary(main_run, next((r for r in runs if "residual_alone" in r), None)))
        return 0
    import torch

    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", "1")))
    scenes = sorted(Path(args.data).glob("*.tif"))
    if args.scenes:
        scenes = [s for s in scenes if s.name in args.scenes]
    if not scenes:
        raise SystemExit(f"no scenes (*.tif) in {args.data}")
    result = {"command": " ".join(["python"] + [os.path.relpath(sys.argv[0], ROOT)] + sys.argv[1:]),
              "bounds": args.bounds, "float_scale": args.float_scale, "scenes": []}
    if args.residual_alone:
        result["residual_alone"] = [residual_alone(s, args.bounds, args.float_scale) for s in scenes]
        for r in result["residual_alone"]:
            print(r["scene"], "; ".join(f"E={e}: {v:.3f}" for e, v in r["bpppc"].items()), flush=True)
        if args.out:
            Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
        return 0
    with tempfile.TemporaryDirectory() as folder:
        for s in scenes:
            result["scenes"].append(run_scene(s, args.bounds, args.float_scale, args.qualities,
                                               args.bounded_qualities, folder))
            print(table(result["scenes"][-1], args.bounds) + "\n", flush=True)
            if args.out:
                Path(args.out).write_text(json.dumps(result, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
