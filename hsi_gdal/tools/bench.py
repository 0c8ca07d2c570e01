"""``hsic bench``: rate-distortion and speed of every registered codec and the classical baselines.

For each scene of a folder, each registered codec at each of its qualities (through
``hsi_gdal.Translate``, exactly what ``hsic compress`` writes) and each baseline of
:mod:`hsi_gdal.tools.baselines` at its target rates, one record: true bpppc from the bytes written,
compression ratio, the metrics of :func:`hsi_gdal.evaluate.quality_metrics`, encode and decode
throughput and peak memory. Then BD-rate (PSNR and SAM) of every method against each baseline, per
scene. Writes ``<name>.json``, ``<name>.md`` and ``<name>_psnr.png`` / ``<name>_sam.png``.
"""

from __future__ import annotations

import json
import math
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Callable

import numpy as np

from engine.bdrate import bd_rate
from engine.errors import InputError
from engine.registry import codec_class, list_codecs
from hsi_gdal.tools import baselines
from hsi_gdal.gdal_env import open_raster
from hsi_gdal.evaluate import quality_metrics, rate_metrics

BASELINES = ("jpeg2000", "pca-jpeg2000", "deflate")
ANCHORS = ("jpeg2000", "pca-jpeg2000")  # the lossy baselines BD-rates are measured against
QUICK_SCENES = ("enmap_potsdam_c", "aviris_sandiego_224")
QUICK_CROP = 64
QUICK_RATES = {"jpeg2000": (0.25, 1.0, 4.0), "pca-jpeg2000": (0.06, 0.25, 1.0)}
# A continuous-rate codec (klt) is run at these target rates (``hsic compress --bpppc``), spanning the
# 0.05-1 bpppc over which BD-rates are compared; its encode time includes the rate search.
CONTINUOUS_RATES = (0.05, 0.1, 0.175, 0.25, 0.35, 0.5, 0.75, 1.0)
QUICK_CONTINUOUS_RATES = (0.1, 0.5)


class PeakRSS:
    """Peak growth of the process's resident memory during a block, sampled every 2 ms (MB).

    A lower bound: memory the process already holds (freed by earlier work, kept by the allocator)
    is reused without growing the resident set.
    """

    def __init__(self):
        self.peak_mb = 0.0
        self._stop = threading.Event()

    @staticmethod
    def _rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    def _poll(self):
        peak = self._base
        while not self._stop.wait(0.002):
            peak = max(peak, self._rss())
        self.peak_mb = (max(peak, self._rss()) - self._base) / 1e6

    def __enter__(self):
        self._base = self._rss()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def _cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return torch.cuda.is_available()


def _sync(device: str) -> None:
    """Wait for queued GPU work before reading a clock (no-op on the CPU)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()


def _gpu_peak_start(device: str) -> None:
    if device == "cuda":
        import torch

        torch.cuda.reset_peak_memory_stats()


def _gpu_peak_mb(device: str) -> float | None:
    if device != "cuda":
        return None
    import torch

    return torch.cuda.max_memory_allocated() / 1e6


def _record(scene: str, method: str, setting: dict, ref: np.ndarray, nodata, decoded: np.ndarray,
            n_bytes: int, encode_s: float, decode_s: float, memory: dict, device: str) -> dict:
    source_mb = ref.size * ref.dtype.itemsize / 1e6
    return {
        "scene": scene, "method": method, **setting, "device": device, "shape": list(ref.shape),
        "dtype": ref.dtype.name, **rate_metrics(n_bytes, ref.shape, ref.dtype),
        **quality_metrics(ref, decoded, nodata),
        "encode_s": encode_s, "decode_s": decode_s,
        "encode_mb_s": source_mb / encode_s if encode_s > 0 else math.inf,
        "decode_mb_s": source_mb / decode_s if decode_s > 0 else math.inf,
        **memory,
    }


def run_codec(scene: Path, name: str, codec: str, quality: int | float, ref: np.ndarray, nodata, folder: str,
              device: str, continuous: bool = False) -> dict:
    """Compress with ``hsi_gdal.Translate`` (as ``hsic compress``), decode the whole cube, measure.

    ``continuous``: ``quality`` is a target rate in bpppc (``--bpppc``) for a continuous-rate codec."""
    import hsi_gdal

    dst = os.path.join(folder, "c.hsic")
    _sync(device)
    _gpu_peak_start(device)
    with PeakRSS() as enc_mem:
        t0 = time.perf_counter()
        if continuous:
            hsi_gdal.Translate(dst, str(scene), codec=codec, bpppc=quality, device=device)
        else:
            hsi_gdal.Translate(dst, str(scene), codec=codec, quality=quality, device=device)
        _sync(device)
        encode_s = time.perf_counter() - t0
    enc_gpu = _gpu_peak_mb(device)
    _gpu_peak_start(device)
    with PeakRSS() as dec_mem:
        t0 = time.perf_counter()
        ds = hsi_gdal.Open(dst, device=device)
        decoded = ds.ReadAsArray()
        _sync(device)
        decode_s = time.perf_counter() - t0
    memory = {"encode_peak_rss_mb": enc_mem.peak_mb, "decode_peak_rss_mb": dec_mem.peak_mb,
              "encode_peak_gpu_mb": enc_gpu, "decode_peak_gpu_mb": _gpu_peak_mb(device)}
    # The rate is the .hsic alone: the sidecar .vrt is a convenience view, not needed to decode.
    setting = {"target_bpppc": quality} if continuous else {"quality": quality}
    return _record(name, codec, setting, ref, nodata, decoded, os.path.getsize(dst),
                   encode_s, decode_s, memory, device)


def run_baseline(scene: Path, name: str, method: str, rate: float | None, ref: np.ndarray, nodata,
                 folder: str) -> dict:
    with PeakRSS() as mem:
        if method == "jpeg2000":
            c = baselines.jpeg2000(str(scene), folder, rate)
        elif method == "pca-jpeg2000":
            c = baselines.pca_jpeg2000(str(scene), folder, rate)
        else:
            c = baselines.deflate(str(scene), folder)
    memory = {"encode_peak_rss_mb": mem.peak_mb, "decode_peak_rss_mb": None,
              "encode_peak_gpu_mb": None, "decode_peak_gpu_mb": None}
    rec = _record(name, method, c.setting, ref, nodata, c.decoded, c.n_bytes, c.encode_s, c.decode_s,
                  memory, "cpu")
    rec["files"] = [os.path.basename(f) for f in c.files]
    return rec


def _crop(scene: Path, folder: str, size: int) -> Path:
    """A centre crop of at most size x size pixels (all bands), as a GeoTIFF with the scene's metadata."""
    from hsi_gdal.gdal_env import gdal

    ds = open_raster(str(scene))
    w, h = min(size, ds.RasterXSize), min(size, ds.RasterYSize)
    out = Path(folder) / scene.name
    gdal.Translate(str(out), ds, srcWin=[(ds.RasterXSize - w) // 2, (ds.RasterYSize - h) // 2, w, h],
                   creationOptions=["COMPRESS=DEFLATE", "INTERLEAVE=BAND"])
    return out


def bd_rates(records: list[dict]) -> list[dict]:
    """BD-rate (PSNR and SAM) of every lossy method against each anchor baseline, per scene."""
    out = []
    scenes = sorted({r["scene"] for r in records})
    methods = sorted({r["method"] for r in records if r["method"] != "deflate"})
    for scene in scenes:
        curves = {}
        for m in methods:
            pts = sorted((r for r in records if r["scene"] == scene and r["method"] == m and r["device"] == "cpu"),
                         key=lambda r: r["bpppc"])
            if len(pts) >= 2:
                curves[m] = pts
        for anchor in ANCHORS:
            if anchor not in curves:
                continue
            a = curves[anchor]
            for m, t in curves.items():
                if m == anchor:
                    continue
                row = {"scene": scene, "method": m, "anchor": anchor}
                for key, metric in (("bd_rate_psnr_pct", "psnr_db"), ("bd_rate_sam_pct", "sam_deg")):
                    try:
                        v = bd_rate([r["bpppc"] for r in a], [r[metric] for r in a],
                                    [r["bpppc"] for r in t], [r[metric] for r in t])
                    except InputError:
                        v = math.nan
                    row[key] = None if math.isnan(v) else v
                out.append(row)
    return out


def _interp_at_rate(pts: list[dict], key: str, rate: float) -> float | None:
    """``key`` at ``rate`` by linear interpolation in log rate between measured points (None outside them)."""
    pts = sorted(pts, key=lambda r: r["bpppc"])
    xs = np.log([r["bpppc"] for r in pts])
    if len(pts) < 2 or not xs[0] <= math.log(rate) <= xs[-1]:
        return None
    return float(np.interp(math.log(rate), xs, [r[key] for r in pts]))


def targets(records: list[dict], bds: list[dict]) -> list[dict]:
    """The issue's targets for every learned codec, measured (see docs/benchmarks for the wording)."""
    rows = []
    codecs = sorted({r["method"] for r in records if r["method"] not in BASELINES})
    cpu = [r for r in records if r["device"] == "cpu"]
    for c in codecs:
        row = {"codec": c}
        for anchor, key in (("pca-jpeg2000", "bd_psnr_vs_pca_pct"), ("jpeg2000", "bd_psnr_vs_jpeg2000_pct")):
            vals = [b["bd_rate_psnr_pct"] for b in bds
                    if b["method"] == c and b["anchor"] == anchor and b["bd_rate_psnr_pct"] is not None]
            row[key] = float(np.mean(vals)) if vals else None
            row[key.replace("_pct", "_scenes")] = len(vals)
            row[key.replace("_pct", "_worst_pct")] = float(max(vals)) if vals else None
        enmap = [r for r in cpu if r["method"] == c and r["scene"] == "enmap_potsdam_c" and r["bpppc"] <= 0.25]
        row["enmap_best_psnr_at_0.25"] = max((r["psnr_db"] for r in enmap), default=None)
        enmap3 = [r for r in cpu if r["method"] == c and r["scene"] == "enmap_potsdam_c" and r["bpppc"] <= 0.3]
        row["enmap_best_psnr_at_0.3"] = max((r["psnr_db"] for r in enmap3), default=None)
        ratios = []
        for scene in sorted({r["scene"] for r in cpu}):
            mine = _interp_at_rate([r for r in cpu if r["scene"] == scene and r["method"] == c], "sam_deg", 0.25)
            pca = _interp_at_rate([r for r in cpu if r["scene"] == scene and r["method"] == "pca-jpeg2000"],
                                  "sam_deg", 0.25)
            if mine is not None and pca:
                ratios.append(mine / pca)
        row["sam_ratio_vs_pca_at_0.25"] = float(np.mean(ratios)) if ratios else None
        row["sam_ratio_scenes"] = len(ratios)
        for what in ("encode", "decode"):
            mine = [r[f"{what}_mb_s"] for r in cpu if r["method"] == c]
            for anchor in ("jpeg2000", "pca-jpeg2000"):
                ref = [r[f"{what}_mb_s"] for r in cpu if r["method"] == anchor]
                key = f"{what}_speed_vs_{anchor.replace('-', '_')}"
                row[key] = float(np.median(mine) / np.median(ref)) if mine and ref else None
        rows.append(row)
    return rows


def _fmt(v, spec=".2f", none="n/a") -> str:
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return none
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return format(v, spec)


def plot(records: list[dict], metric: str, ylabel: str, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenes = sorted({r["scene"] for r in records})
    methods = sorted({r["method"] for r in records})
    ncol = min(4, len(scenes))
    nrow = math.ceil(len(scenes) / ncol)
    fig, axes = plt.subplots(nrow, ncol, figsize=(4.2 * ncol, 3.4 * nrow), squeeze=False)
    for ax, scene in zip(axes.flat, scenes):
        for m in methods:
            pts = sorted((r for r in records if r["scene"] == scene and r["method"] == m and r["device"] == "cpu"),
                         key=lambda r: r["bpppc"])
            if m == "deflate":  # lossless: no distortion to plot, only where its rate lies
                for r in pts:
                    ax.axvline(r["bpppc"], color="grey", ls=":", lw=1, label="deflate (lossless)")
                continue
            if pts:
                ax.plot([r["bpppc"] for r in pts], [r[metric] for r in pts], "o-", ms=3, label=m)
        ax.set_xscale("log")
        ax.set_title(scene, fontsize=9)
        ax.set_xlabel("bpppc (file bytes)")
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
    for ax in list(axes.flat)[len(scenes):]:
        ax.axis("off")
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="lower center", ncol=min(6, len(labels)), fontsize=8)
    fig.tight_layout(rect=(0, 0.06, 1, 1))
    fig.savefig(path, dpi=110)
    plt.close(fig)


def report(result: dict) -> str:
    recs, bds, tg = result["records"], result["bd_rates"], result["targets"]
    m = result["machine"]
    lines = [f"# `hsic bench`{' --quick' if result['quick'] else ''}: rate-distortion and speed", "",
             f"Command: `{result['command']}`  ", f"Run {result['created']} on {m['cpus']} CPU cores"
             f"{', GPU ' + m['gpu'] if m['gpu'] else ', no GPU'}; GDAL {m['gdal']}, torch {m['torch']}; "
             f"{result['elapsed_s']:.0f} s.", "",
             f"Scenes measured: {len(result['scenes_done'])} of {len(result['scenes_planned'])} "
             f"({', '.join(result['scenes_done'])})"
             + ("" if len(result["scenes_done"]) == len(result["scenes_planned"]) else
                f"; not measured (the run was stopped): {', '.join(result['scenes_planned'][len(result['scenes_done']):])}")
             + ".", "",
             "Rates are true bpppc: bytes of every file a method writes x 8 / (rows x cols x bands). PSNR peak:"
             " the data range of the valid reference samples; nodata samples are left out of every metric. "
             "Throughput: MB/s of source bytes (the raw cube in its own type); encode of a learned codec is "
             "the whole `hsic compress` (read, range scan, encode, write), decode reads the whole cube back. "
             "Peak memory: growth of the process's resident set during the call (a lower bound).", ""]
    lines += ["## Targets", "",
              "Targets of the default codec (issue 14): BD-rate PSNR vs pca-jpeg2000 <= -20 % mean and <= -10 % "
              "on every scene (moonshot -30 %); enmap_potsdam_c >= 51 dB at <= 0.25 bpppc; mean SAM at 0.25 "
              "bpppc <= 0.8x pca-jpeg2000's; encode >= pca-jpeg2000's speed; decode >= 2x jpeg2000's. "
              "Targets of the seed codecs (issue 15): BD-rate vs pca-jpeg2000 <= +25 %; enmap_potsdam_c "
              ">= 45 dB at <= 0.3 bpppc.", "",
              "| codec | BD-rate PSNR vs pca-jpeg2000: mean (scenes) | worst scene | vs jpeg2000 | "
              "enmap_potsdam_c best PSNR at <= 0.25 bpppc | at <= 0.3 | mean SAM at 0.25 bpppc / pca-jpeg2000's | "
              "encode speed / jpeg2000's | / pca-jpeg2000's | decode / jpeg2000's |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for t in tg:
        lines.append(
            f"| {t['codec']} | {_fmt(t['bd_psnr_vs_pca_pct'], '+.1f')} % ({t['bd_psnr_vs_pca_scenes']}) | "
            f"{_fmt(t.get('bd_psnr_vs_pca_worst_pct'), '+.1f')} % | "
            f"{_fmt(t['bd_psnr_vs_jpeg2000_pct'], '+.1f')} % ({t['bd_psnr_vs_jpeg2000_scenes']}) | "
            f"{_fmt(t['enmap_best_psnr_at_0.25'], '.2f', 'no point')} | "
            f"{_fmt(t.get('enmap_best_psnr_at_0.3'), '.2f', 'no point')} | "
            f"{_fmt(t['sam_ratio_vs_pca_at_0.25'])} ({t['sam_ratio_scenes']}) | "
            f"{_fmt(t['encode_speed_vs_jpeg2000'])} | {_fmt(t.get('encode_speed_vs_pca_jpeg2000'))} | "
            f"{_fmt(t['decode_speed_vs_jpeg2000'])} |")
    lines += ["", "BD-rate is averaged over the scenes where the two curves' quality ranges overlap (n/a: none "
              "do); SAM at 0.25 bpppc is interpolated in log rate between measured points, on scenes where both"
              " curves span 0.25 bpppc; speed ratios compare median throughputs over all points.", "",
              "## BD-rate per scene", "", "Negative: fewer bits than the anchor for the same PSNR (or SAM).", "",
              "| scene | method | anchor | BD-rate PSNR % | BD-rate SAM % |", "|---|---|---|---|---|"]
    for b in bds:
        lines.append(f"| {b['scene']} | {b['method']} | {b['anchor']} | {_fmt(b['bd_rate_psnr_pct'], '+.1f')} | "
                     f"{_fmt(b['bd_rate_sam_pct'], '+.1f')} |")
    lines += ["", "## Every measurement", "",
              "| scene | method | setting | device | bpppc | ratio | PSNR dB | band-peak PSNR dB | SSIM | SAM deg | "
              "max abs err | enc MB/s | dec MB/s | enc peak MB | dec peak MB |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in recs:
        setting = (f"q{r['quality']}" if "quality" in r else
                   f"k={r['k']}, {r['target_bpppc']}" if "k" in r else
                   f"{r['target_bpppc']}" if "target_bpppc" in r else "lossless")
        gpu = r.get("encode_peak_gpu_mb")
        lines.append(
            f"| {r['scene']} | {r['method']} | {setting} | {r['device']} | {r['bpppc']:.4f} | "
            f"{r['compression_ratio']:.1f} | {_fmt(r['psnr_db'])} | {_fmt(r['psnr_band_peak_db'])} | "
            f"{r['ssim']:.4f} | {_fmt(r['sam_deg'])} | {r['max_abs_error']:.4g} | {r['encode_mb_s']:.2f} | "
            f"{r['decode_mb_s']:.2f} | {_fmt(r['encode_peak_rss_mb'], '.0f')}"
            f"{' (GPU ' + _fmt(gpu, '.0f') + ')' if gpu is not None else ''} | "
            f"{_fmt(r['decode_peak_rss_mb'], '.0f', '-')} |")
    lines += ["", f"Plots: `{result['name']}_psnr.png`, `{result['name']}_sam.png`."]
    return "\n".join(lines) + "\n"


def _machine() -> dict:
    from hsi_gdal.gdal_env import gdal

    gpu = None
    torch_version = None
    try:
        import torch

        torch_version = torch.__version__
        if torch.cuda.is_available():
            gpu = torch.cuda.get_device_name(0)
    except ImportError:
        pass
    return {"cpus": os.cpu_count(), "platform": platform.platform(), "python": platform.python_version(),
            "gdal": gdal.__version__, "torch": torch_version, "gpu": gpu}


def run_bench(data: Path, out: Path, codecs: list[str] | None = None, quick: bool = False,
              command: str = "hsic bench", log: Callable[[str], None] = print) -> dict:
    """Run the benchmark and write ``bench[_quick].{json,md}`` and the plots into ``out``; returns the result."""
    # The headline scenes first, so that a run stopped early has measured what matters most.
    scenes = sorted(Path(data).glob("*.tif"), key=lambda p: (p.stem not in QUICK_SCENES, p.name))
    if quick:
        scenes = [s for s in scenes if s.stem in QUICK_SCENES] or scenes[:2]
    if not scenes:
        raise InputError(f"no scenes (*.tif) in {data}")
    learned = [c.id for c in list_codecs()]
    wanted = codecs or learned + list(BASELINES)
    unknown = [c for c in wanted if c not in learned and c not in BASELINES]
    if unknown:
        raise InputError(f"unknown codec {unknown[0]!r}; known: {', '.join(learned + list(BASELINES))}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    devices = ["cpu"] + (["cuda"] if _cuda_available() else [])
    rates = QUICK_RATES if quick else {"jpeg2000": baselines.JP2_RATES, "pca-jpeg2000": baselines.PCA_RATES}
    records: list[dict] = []
    t_start = time.perf_counter()
    name = "bench_quick" if quick else "bench"
    meta = {"name": name, "command": command, "quick": quick, "data": str(data),
            "scenes_planned": [s.stem for s in scenes], "machine": _machine()}
    result: dict = {}
    with tempfile.TemporaryDirectory(prefix="hsic-bench-") as tmp:
        for n, scene in enumerate(scenes, 1):
            src = _crop(scene, tmp, QUICK_CROP) if quick else scene
            ds = open_raster(str(src))
            ref, nodata = ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()
            ref = ref.reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
            jobs = []
            for c in wanted:
                if c in learned:
                    if codec_class(c).continuous_rate:
                        jobs += [(c, r, d) for d in devices
                                 for r in (QUICK_CONTINUOUS_RATES if quick else CONTINUOUS_RATES)]
                    else:
                        info = next(i for i in list_codecs() if i.id == c)
                        jobs += [(c, q, d) for d in devices for q in info.qualities]
                elif c == "deflate":
                    jobs.append((c, None, "cpu"))
                else:
                    jobs += [(c, r, "cpu") for r in rates[c]]
            for method, setting, device in jobs:
                work = tempfile.mkdtemp(dir=tmp)
                try:
                    if method in learned:
                        rec = run_codec(src, scene.stem, method, setting, ref, nodata, work, device,
                                        codec_class(method).continuous_rate)
                    else:
                        rec = run_baseline(src, scene.stem, method, setting, ref, nodata, work)
                except InputError as e:  # e.g. a PCA basis larger than the whole rate budget
                    log(f"[{n}/{len(scenes)}] {scene.stem} {method} {setting}: skipped ({e})")
                    continue
                finally:
                    shutil.rmtree(work, ignore_errors=True)
                records.append(rec)
                log(f"[{n}/{len(scenes)}] {scene.stem} {method} {setting if setting is not None else ''} "
                    f"{device}: {rec['bpppc']:.4f} bpppc, {_fmt(rec['psnr_db'])} dB, SAM {_fmt(rec['sam_deg'])}")
            # Written after every scene: a run stopped early still leaves a consistent report of the
            # scenes it finished (the report names the planned and the finished scenes).
            bds = bd_rates(records)
            result = {**meta, "scenes_done": [s.stem for s in scenes[:n]],
                      "created": datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
                      "elapsed_s": time.perf_counter() - t_start, "records": records, "bd_rates": bds,
                      "targets": targets(records, bds)}
            write_outputs(out, result)
    return result


def write_outputs(out: Path, result: dict) -> None:
    """``<name>.json``, ``<name>.md`` and the two plots, each written under a temporary name and renamed."""
    name = result["name"]
    files = {f"{name}.json": lambda p: p.write_text(json.dumps(_finite(result), indent=1, default=_json_default)),
             f"{name}.md": lambda p: p.write_text(report(result)),
             f"{name}_psnr.png": lambda p: plot(result["records"], "psnr_db", "PSNR dB", p),
             f"{name}_sam.png": lambda p: plot(result["records"], "sam_deg", "mean SAM deg", p)}
    for fname, write in files.items():
        tmp = out / f".{fname}.partial{Path(fname).suffix}"
        write(tmp)
        os.replace(tmp, out / fname)


def _finite(o):
    """Strict JSON: non-finite floats (a lossless PSNR is inf) become null."""
    if isinstance(o, dict):
        return {k: _finite(v) for k, v in o.items()}
    if isinstance(o, list):
        return [_finite(v) for v in o]
    if isinstance(o, float) and not math.isfinite(o):
        return None
    return o


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    return str(o)


def main_args(args) -> None:
    """Entry for ``hsic bench`` (hsi_gdal/tools/cli.py)."""
    data = Path(args.data)
    command = " ".join(["hsic bench", *(["--codecs", *args.codecs] if args.codecs else []),
                        f"--data {args.data}", f"--out {args.out}", *(["--quick"] if args.quick else [])])
    result = run_bench(data, Path(args.out), args.codecs, args.quick, command=command,
                       log=(lambda s: None) if args.quiet else (lambda s: print(s, file=sys.stderr, flush=True)))
    print(f"{args.out}/{result['name']}.md, .json, _psnr.png, _sam.png: {len(result['records'])} records "
          f"in {result['elapsed_s']:.0f} s")
