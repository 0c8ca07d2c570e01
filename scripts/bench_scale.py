"""Big-scene benchmark: peak memory and throughput of compress/decompress, and PSNR along tile seams.

Builds large int16 scenes by mosaicking and mirroring the real EnMAP training scenes of
../shared/data/hsi/train (224 bands), writes them to a scratch folder outside the repo, runs
``hsi_gdal.Translate`` compress and decompress each in a fresh process (peak RSS = that process's
VmHWM), measures PSNR on pixels next to internal tile borders vs the rest, deletes the scratch
files and writes a Markdown report.

    .venv/bin/python scripts/bench_scale.py --sizes 1000 4000 --out docs/benchmarks/scale.md

(``HSIC_TRAIN_DIR`` overrides the training folder, for a worktree that is not beside ../shared.)

The seam measurement only compares the source with the decoded GeoTIFF and reads the tile size from
the .hsic header, so it works for every registered codec (``--seam-codecs``, default: all).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
TRAIN = Path(os.environ.get("HSIC_TRAIN_DIR", ROOT.parent / "shared" / "data" / "hsi" / "train"))
BASE_SCENES = ("enmap_potsdam_a.tif", "enmap_potsdam_b.tif")  # both 64 rows x 224 bands, int16


def _gdal():
    sys.path.insert(0, str(ROOT))
    import hsi_gdal  # noqa: F401  (GDAL exceptions on)
    from osgeo import gdal

    return gdal


def build_scene(path: str, size: int) -> None:
    """A size x size x 224 int16 GeoTIFF: the EnMAP training scenes side by side, mirrored to fill it."""
    gdal = _gdal()
    cubes, first = [], None
    for name in BASE_SCENES:
        ds = gdal.Open(str(TRAIN / name))
        cubes.append(ds.ReadAsArray())
        first = first or ds
    base = np.concatenate(cubes, axis=2)  # (224, 64, 160)
    bands, br, bc = base.shape

    def mirror(n: int, period: int) -> np.ndarray:
        # 0 1 .. p-1 p-1 .. 1 0 0 1 ..: reflection keeps the mosaic continuous across copies
        m = np.arange(n) % (2 * period)
        return np.where(m < period, m, 2 * period - 1 - m)

    ys, xs = mirror(size, br), mirror(size, bc)
    drv = gdal.GetDriverByName("GTiff")
    out = drv.Create(path, size, size, bands, gdal.GDT_Int16,
                     ["TILED=YES", "BLOCKXSIZE=128", "BLOCKYSIZE=128", "INTERLEAVE=BAND", "BIGTIFF=YES"])
    out.SetProjection(first.GetProjection())
    out.SetGeoTransform(first.GetGeoTransform())
    for i in range(bands):
        src, dst = first.GetRasterBand(i + 1), out.GetRasterBand(i + 1)
        dst.SetDescription(src.GetDescription())
        dst.SetMetadata(src.GetMetadata())
        dst.SetNoDataValue(src.GetNoDataValue())
    cols = base[:, :, xs]  # (224, 64, size)
    for y0 in range(0, size, 128):
        strip = np.ascontiguousarray(cols[:, ys[y0:y0 + 128], :])
        out.WriteRaster(0, y0, size, strip.shape[1], strip.tobytes(), buf_type=gdal.GDT_Int16)
    out.FlushCache()
    out = None


def peak_rss_mb() -> float:
    """This process's peak resident set (VmHWM) in MB.

    Not ru_maxrss: Linux carries ru_maxrss over an exec, so a child forked from this benchmark's parent
    (which holds whole windows of two scenes while measuring seams) would report the parent's peak.
    """
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # not Linux


def child(op: str, src: str, dst: str, codec: str) -> None:
    """Run one Translate in this (fresh) process and print time and peak RSS as JSON."""
    sys.path.insert(0, str(ROOT))
    import hsi_gdal

    t = time.perf_counter()
    if op == "compress":
        hsi_gdal.Translate(dst, src, codec=codec, device="cpu")
    else:
        hsi_gdal.Translate(dst, src, device="cpu")
    seconds = time.perf_counter() - t
    print(json.dumps({"seconds": seconds, "peak_rss_mb": peak_rss_mb()}))


def run_child(op: str, src: str, dst: str, codec: str, log) -> dict:
    cmd = [sys.executable, __file__, "--child", op, src, dst, codec]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    if r.returncode:
        raise SystemExit(f"{op} failed:\n{r.stderr[-3000:]}")
    rec = json.loads(r.stdout.strip().splitlines()[-1])
    print(f"  {op}: {rec['seconds']:.1f} s, peak RSS {rec['peak_rss_mb']:.0f} MB", file=log, flush=True)
    return rec


SEAM_WIDTH = 2  # pixels on each side of an internal tile border that count as "seam"


def seam_psnr(ref_path: str, dec_path: str, tile: int, step: int = 512, width: int = SEAM_WIDTH) -> dict:
    """PSNR of pixels within ``width`` pixels of an internal tile border vs all other pixels (streamed)."""
    gdal = _gdal()
    from engine.normalise import valid_mask

    ref, dec = gdal.Open(ref_path), gdal.Open(dec_path)
    rows, cols = ref.RasterYSize, ref.RasterXSize
    nodata = ref.GetRasterBand(1).GetNoDataValue()

    def near_border(n: int) -> np.ndarray:
        i = np.arange(n)
        # the first/last ``width`` pixels of a tile, except along the scene's own edges
        return ((i % tile < width) & (i >= tile)) | ((i % tile >= tile - width) & ((i // tile + 1) * tile < n))

    seam_rows, seam_cols = near_border(rows), near_border(cols)
    sse = {"seam": 0.0, "interior": 0.0}
    count = {"seam": 0, "interior": 0}
    lo, hi = np.inf, -np.inf
    for y0 in range(0, rows, step):
        for x0 in range(0, cols, step):
            h, w = min(step, rows - y0), min(step, cols - x0)
            a = ref.ReadAsArray(x0, y0, w, h).astype(np.float64)
            b = dec.ReadAsArray(x0, y0, w, h).astype(np.float64)
            valid = valid_mask(a, nodata)
            err = np.where(valid, (a - b) ** 2, 0.0).sum(axis=0)
            n = valid.sum(axis=0)
            seam = seam_rows[y0:y0 + h, None] | seam_cols[None, x0:x0 + w]
            for key, sel in (("seam", seam), ("interior", ~seam)):
                sse[key] += float(err[sel].sum())
                count[key] += int(n[sel].sum())
            if valid.any():
                lo, hi = min(lo, a[valid].min()), max(hi, a[valid].max())
    peak = hi - lo
    out = {}
    for key in sse:
        mse = sse[key] / max(count[key], 1)
        out[key] = 10 * np.log10(peak ** 2 / mse) if mse > 0 else float("inf")
        out[f"{key}_samples"] = count[key]
    return out


def bench(size: int, codec: str, scratch: str, log, seams: bool = True) -> dict:
    from engine.format.container import open_hsic

    src, hsic, dec = (os.path.join(scratch, f"scene{size}{ext}") for ext in (".tif", ".hsic", "_dec.tif"))
    t = time.perf_counter()
    if not os.path.exists(src):
        build_scene(src, size)
        print(f"built {size} x {size} x 224 in {time.perf_counter() - t:.0f} s", file=log, flush=True)
    print(f"{size} x {size}, {codec}:", file=log, flush=True)
    comp = run_child("compress", src, hsic, codec, log)
    de = run_child("decompress", hsic, dec, codec, log)
    with open_hsic(hsic) as r:
        tile = r.header.tile_rows
        bands = r.header.bands
    rec = {"size": size, "codec": codec, "bands": bands, "tile": tile, "compress": comp, "decompress": de,
           "bpppc": os.path.getsize(hsic) * 8 / (size * size * bands)}
    if seams:
        rec["seams"] = seam_psnr(src, dec, tile)
        print(f"  seams: {rec['seams']}", file=log, flush=True)
    for p in (hsic, hsic + ".vrt", dec):
        if os.path.exists(p):
            os.remove(p)
    return rec


def report(records: list[dict], cmd: str) -> str:
    lines = ["# Big scenes: peak memory, throughput, tile seams", "",
             f"Command: `{cmd}`", "",
             f"Machine: {platform.machine()}, {os.cpu_count()} CPU cores shared with other work, no GPU "
             "(`--device cpu`); each compress/decompress ran in a fresh process, peak RSS is its VmHWM.",
             "Scenes: the two EnMAP training scenes (`enmap_potsdam_a`, `enmap_potsdam_b`, 224 bands, int16, "
             "nodata -32768) side by side and mirrored to fill the size; a tiled uncompressed GeoTIFF in a "
             "scratch folder, deleted afterwards. Decompress writes a DEFLATE GeoTIFF.", "",
             "| scene | codec | bpppc | compress s | compress Mpx/s | compress MB/s raw | compress peak RSS MB "
             "| decompress s | decompress Mpx/s | decompress peak RSS MB |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in records:
        px = r["size"] ** 2
        raw_mb = px * r["bands"] * 2 / 1e6
        c, d = r["compress"], r["decompress"]
        lines.append(f"| {r['size']} x {r['size']} x {r['bands']} | {r['codec']} | {r['bpppc']:.4f} "
                     f"| {c['seconds']:.1f} | {px / c['seconds'] / 1e6:.4f} | {raw_mb / c['seconds']:.2f} "
                     f"| {c['peak_rss_mb']:.0f} | {d['seconds']:.1f} | {px / d['seconds'] / 1e6:.4f} "
                     f"| {d['peak_rss_mb']:.0f} |")
    by_size = {}
    for r in records:
        by_size.setdefault(r["codec"], []).append(r)
    lines += [""]
    for codec, recs in by_size.items():
        if len(recs) > 1:
            small, big = min(recs, key=lambda r: r["size"]), max(recs, key=lambda r: r["size"])
            for op in ("compress", "decompress"):
                ratio = big[op]["peak_rss_mb"] / small[op]["peak_rss_mb"]
                lines.append(f"- {codec} {op}: peak RSS at {big['size']}² is {ratio:.3f}x the peak at "
                             f"{small['size']}² ({big[op]['peak_rss_mb']:.0f} vs {small[op]['peak_rss_mb']:.0f} MB).")
    lines += ["", "## PSNR along tile seams", "",
              f"Seam pixels: those within {SEAM_WIDTH} rows or columns on either side of an internal tile border "
              "(scene edges excluded); interior: all other pixels. PSNR peak: the valid reference range.", "",
              "| scene | codec | tile | PSNR seam dB | PSNR interior dB | seam samples | interior samples |",
              "|---|---|---|---|---|---|---|"]
    for r in records:
        if "seams" in r:
            s = r["seams"]
            lines.append(f"| {r['size']}² | {r['codec']} | {r['tile']} | {s['seam']:.2f} | {s['interior']:.2f} "
                         f"| {s['seam_samples']} | {s['interior_samples']} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:6])
        return
    sys.path.insert(0, str(ROOT))
    from engine.registry import DEFAULT_CODEC, list_codecs

    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[1000, 4000])
    p.add_argument("--codec", default=DEFAULT_CODEC, help="codec for the memory runs")
    p.add_argument("--seam-codecs", nargs="*", default=None,
                   help="codecs whose seams are measured on the smallest size (default: all registered)")
    p.add_argument("--seams-big", action="store_true", help="also measure seams on the larger sizes")
    p.add_argument("--scratch", default=None, help="scratch folder (default: a new one in the system temp dir)")
    p.add_argument("--out", default=None, help="Markdown report to write")
    args = p.parse_args()
    if not all((TRAIN / n).is_file() for n in BASE_SCENES):
        raise SystemExit(f"needs {', '.join(BASE_SCENES)} in {TRAIN}")
    seam_codecs = args.seam_codecs if args.seam_codecs is not None else [i.id for i in list_codecs()]
    scratch = tempfile.mkdtemp(prefix="hsic_scale_", dir=args.scratch)
    log = sys.stdout
    records = []
    try:
        sizes = sorted(args.sizes)
        for size in sizes:
            records.append(bench(size, args.codec, scratch, log, seams=size == sizes[0] or args.seams_big))
            if args.out:  # partial results survive an interrupted run
                Path(args.out).write_text(report(records, "python scripts/bench_scale.py " + " ".join(sys.argv[1:])))
            if size == sizes[0]:
                for c in seam_codecs:
                    if c != args.codec:
                        records.append(bench(size, c, scratch, log))
            os.remove(os.path.join(scratch, f"scene{size}.tif"))
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    text = report(records, "python scripts/bench_scale.py " + " ".join(sys.argv[1:]))
    print(text)
    if args.out:
        Path(args.out).write_text(text)


if __name__ == "__main__":
    main()
