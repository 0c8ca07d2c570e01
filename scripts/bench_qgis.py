"""What a QGIS user waits for: adding a 512 x 512 x 224 layer and drawing it, .hsic against GeoTIFF and JPEG 2000.

Builds the scene from the bundled sample (hsi_gdal/sample, mirrored to 512 x 512; no shared data needed),
compresses it with the default codec, writes the same scene as GDAL JPEG 2000 (JP2OpenJPEG, lossy, at the
.hsic's size), and for each format runs fresh processes that start QGIS offscreen (QgsApplication, and
``import hsi_gdal`` as the plugin does when QGIS loads it), then time:

* add: ``QgsRasterLayer`` + ``QgsProject.addMapLayer`` (what "Add Raster Layer" does, default style
  and statistics included), and, in other processes, Processing's loader (``mapLayerFromString``);
* cold render: the first 1024 x 1024 render of "zoom to layer" with ``QgsMapRendererParallelJob``, the
  renderer QGIS's canvas uses (first decode, so the decoder's imports are included);
* warm render: the same render again in the same process;
* pan: a 1024 x 1024 view of the top-left quarter, then of the unseen bottom-right quarter (imports done,
  tiles never decoded); the main thread's event loop ticks every 5 ms during the pan's render, and the
  longest gap between ticks says whether the GUI would freeze. The pixel function is wrapped to record
  which threads decode.

A last fresh process, outside QGIS, splits the cold decode into imports, opening the decoder and
decoding, and names the engine functions that take the most time (cProfile).

    QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_qgis.py --runs 3 --out docs/benchmarks/qgis.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "hsi_gdal" / "sample" / "enmap_potsdam_sample.tif"
SIZE = 512
RENDER = 1024  # output pixels of the rendered view, each side


def mirrored_sample(path, size: int = SIZE, flip: bool = False) -> None:
    """A size x size GeoTIFF of the bundled sample, reflected at its edges to fill it (real spectra,
    continuous across copies), with the sample's georeferencing and band metadata; ``flip`` turns it
    upside down (another scene of the same kind)."""
    from osgeo import gdal

    src = gdal.Open(str(SAMPLE))
    cube = src.ReadAsArray()

    def reflect(n, period):  # 0 1 .. p-1 p-1 .. 1 0 0 1 ..
        m = np.arange(n) % (2 * period)
        return np.where(m < period, m, 2 * period - 1 - m)

    cube = cube[:, reflect(size, cube.shape[1])][:, :, reflect(size, cube.shape[2])]
    if flip:
        cube = cube[:, ::-1]
    out = gdal.GetDriverByName("GTiff").Create(str(path), size, size, src.RasterCount, gdal.GDT_Int16,
                                               ["TILED=YES", "COMPRESS=DEFLATE"])
    out.SetGeoTransform(src.GetGeoTransform())
    out.SetProjection(src.GetProjection())
    for i in range(src.RasterCount):
        sb, ob = src.GetRasterBand(i + 1), out.GetRasterBand(i + 1)
        ob.SetDescription(sb.GetDescription())
        ob.SetMetadata(sb.GetMetadata())
        ob.SetNoDataValue(sb.GetNoDataValue())
        ob.WriteArray(cube[i])
        del sb, ob
    out = None


# ---------------------------------------------------------------- the measuring process (--child)

def child(path: str, pan_path: str, loader: str) -> dict:
    t_start = time.perf_counter()
    from qgis.core import (QgsApplication, QgsMapRendererParallelJob, QgsMapSettings, QgsProject, QgsRasterLayer,
                           QgsRectangle)
    from qgis.PyQt.QtCore import QEventLoop, QSize, QTimer
    from qgis.PyQt.QtGui import QColor

    app = QgsApplication([], False)
    app.initQgis()
    import hsi_gdal  # what the plugin's initGui imports when QGIS loads it (allows the decoder)

    hsi_gdal.allow_decoder()
    out = {"qgis_ready_s": time.perf_counter() - t_start}

    import threading

    from hsi_gdal import pixelfn

    main, decode_threads, original = threading.get_ident(), set(), pixelfn.decode
    calls = []  # (start, seconds) of each pixel function call: where the cold render's time goes

    def recorded(*args, **kwargs):  # GDAL looks the function up by name on each read
        decode_threads.add(threading.get_ident())
        t = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            calls.append((t, time.perf_counter() - t))

    pixelfn.decode = recorded

    t0 = time.perf_counter()
    if loader == "processing":
        from qgis.core import QgsProcessingContext, QgsProcessingFeedback, QgsProcessingUtils

        context = QgsProcessingContext()
        context.setProject(QgsProject.instance())
        if path.endswith(".hsic.vrt"):
            # hsic:open, then what Processing does with the layers it hands over on completion
            from qgis_plugin.provider import HsicProvider

            provider = HsicProvider()  # kept referenced: a temporary one is collected and its algorithms with it
            QgsApplication.processingRegistry().addProvider(provider)
            alg = QgsApplication.processingRegistry().createAlgorithmById("hsic:open")
            _, ok = alg.run({"INPUT": path[:-4]}, context, QgsProcessingFeedback())
            assert ok, path
            for layer_id in context.layersToLoadOnCompletion():
                layer = context.takeResultLayer(layer_id)
                QgsProject.instance().addMapLayer(layer)
                layer.renderer()  # the renderer is made (and any statistics it needs computed) here
        else:
            # How Processing loads a file given as a path: no default style (.qml), so QGIS makes its
            # own renderer and stretch from the data.
            layer = QgsProcessingUtils.mapLayerFromString(path, context)
        out["add_s"] = time.perf_counter() - t0
        out["add_decode_calls"] = len(calls)
        out["decode_calls_on_main_thread"] = main in decode_threads
        del layer, context  # the context owns the layer: both gone before QGIS exits (else a segfault)
        app.exitQgis()
        return out
    layer = QgsRasterLayer(path, "scene")  # what Add Raster Layer, drag-and-drop and the Browser do
    QgsProject.instance().addMapLayer(layer)
    out["add_s"] = time.perf_counter() - t0
    out["add_decode_calls"] = len(calls)
    assert layer.isValid(), path

    def render(extent):
        settings = QgsMapSettings()
        settings.setOutputSize(QSize(RENDER, RENDER))
        settings.setDestinationCrs(layer.crs())
        settings.setExtent(extent)
        settings.setLayers([layer])
        settings.setBackgroundColor(QColor(255, 255, 255))
        job = QgsMapRendererParallelJob(settings)
        loop, stamps = QEventLoop(), []
        timer = QTimer()
        timer.timeout.connect(lambda: stamps.append(time.perf_counter()))
        job.finished.connect(loop.quit)
        t = time.perf_counter()
        stamps.append(t)
        timer.start(5)
        job.start()
        loop.exec_()  # the main thread runs its event loop, as the desktop's does, while workers render
        timer.stop()
        elapsed = time.perf_counter() - t
        stamps.append(time.perf_counter())
        image = job.renderedImage()
        arr = np.frombuffer(image.constBits().asstring(image.sizeInBytes()), np.uint8)
        drawn = float((arr.reshape(-1, 4)[:, :3] != 255).any(axis=1).mean())
        return elapsed, max(np.diff(stamps)), drawn

    full = layer.extent()
    t_cold = time.perf_counter()
    out["cold_render_s"], out["cold_max_gui_gap_s"], out["cold_drawn"] = render(full)
    if calls:  # the first call opens the decoder (its imports included) and decodes the first tile
        out["cold_before_first_decode_s"] = calls[0][0] - t_cold
        out["cold_first_decode_call_s"] = calls[0][1]
        out["cold_other_decode_calls_s"] = sum(c[1] for c in calls[1:])
        out["cold_decode_calls"] = len(calls)
    out["warm_render_s"], _, out["warm_drawn"] = render(full)
    # The pan: quarters of another file of the same format (the scene flipped, so not a copy that a
    # cache could share), whose tiles were never decoded; imports are done.
    QgsProject.instance().removeAllMapLayers()
    layer = QgsRasterLayer(pan_path, "pan")
    QgsProject.instance().addMapLayer(layer)
    e = layer.extent()
    w, h = e.width() / 2, e.height() / 2
    render(QgsRectangle(e.xMinimum(), e.yMaximum() - h, e.xMinimum() + w, e.yMaximum()))
    out["pan_render_s"], out["pan_max_gui_gap_s"], out["pan_drawn"] = render(
        QgsRectangle(e.xMaximum() - w, e.yMinimum(), e.xMaximum(), e.yMinimum() + h))
    QgsProject.instance().removeAllMapLayers()
    del layer
    out["decode_calls_on_main_thread"] = main in decode_threads
    out["decode_threads"] = len(decode_threads)
    out["torch_imported"] = "torch" in sys.modules
    out["numba_imported"] = "numba" in sys.modules
    out["total_s"] = time.perf_counter() - t_start
    app.exitQgis()
    return out


def copy_scene(path: str, folder: str) -> str:
    """A copy, under ``folder``, of a raster and its companions (a sidecar's .hsic and default style
    .qml; no .aux.xml); returns the copy's path. A sidecar finds its .hsic beside it after a move."""
    src = Path(path)
    stem = src.name.split(".")[0]
    for p in src.parent.glob(stem + ".*"):
        if not p.name.endswith(".aux.xml"):
            shutil.copy(p, folder)
    return os.path.join(folder, src.name)


# ---------------------------------------------------------------- the driver

def build(folder: Path, name: str, flip: bool) -> dict[str, Path]:
    """The scene (flipped top to bottom if ``flip``) as .hsic (default codec; its sidecar is the layer),
    DEFLATE GeoTIFF and lossy JPEG 2000 at the .hsic's size, named ``name.*`` in ``folder``."""
    import hsi_gdal  # noqa: F401  (GDAL exceptions on)
    from osgeo import gdal

    tif = folder / f"{name}.tif"
    mirrored_sample(tif, flip=flip)
    hsic = folder / f"{name}.hsic"
    hsi_gdal.Translate(str(hsic), str(tif), device="cpu")
    raw = SIZE * SIZE * 224 * 2
    # OpenJPEG's QUALITY: the output's size as a percentage of the uncompressed data.
    quality = max(1, round(100 * (hsic.stat().st_size + Path(str(hsic) + ".vrt").stat().st_size) / raw))
    jp2 = folder / f"{name}.jp2"
    gdal.Translate(str(jp2), str(tif), format="JP2OpenJPEG",
                   creationOptions=[f"QUALITY={quality}", "REVERSIBLE=NO", "BLOCKXSIZE=256", "BLOCKYSIZE=256"])
    return {"hsic": Path(str(hsic) + ".vrt"), "GeoTIFF (DEFLATE)": tif, "JPEG 2000 (OpenJPEG)": jp2}


def measure(path: Path, pan_path: Path, runs: int, scratch: Path, loader: str) -> list[dict]:
    env = dict(os.environ, QT_QPA_PLATFORM="offscreen", HSIC_DEVICE="cpu",
               PYTHONPATH=str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    records = []
    for _ in range(runs):
        # Each run on fresh copies: no .aux.xml or statistics left by an earlier run.
        run_dir = Path(tempfile.mkdtemp(dir=scratch))
        targets = [copy_scene(str(p), str(run_dir)) for p in (path, pan_path)]
        before = Path(targets[0]).read_bytes()
        t = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--child", *targets, loader], env=env, capture_output=True,
                              text=True)
        wall = time.perf_counter() - t
        if done.returncode != 0:
            raise SystemExit(f"child failed on {targets}:\n{done.stderr[-3000:]}")
        rec = json.loads(done.stdout.strip().splitlines()[-1])
        rec["process_wall_s"] = wall
        rec["file_rewritten"] = Path(targets[0]).read_bytes() != before  # GDAL saving statistics into it
        records.append(rec)
        shutil.rmtree(run_dir, ignore_errors=True)
    return records


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--child", nargs=3, help=argparse.SUPPRESS)
    ap.add_argument("--profile", help=argparse.SUPPRESS)
    ap.add_argument("--runs", type=int, default=3, help="fresh processes per format (median reported)")
    ap.add_argument("--out", default=None, help="Markdown report to write (default: print only)")
    args = ap.parse_args()
    if args.profile:
        print(json.dumps(profile_decode(args.profile)))
        return 0
    if args.child:
        print(json.dumps(child(*args.child)))
        return 0
    sys.path.insert(0, str(ROOT))
    scratch = Path(tempfile.mkdtemp(prefix="bench_qgis_"))
    load = os.getloadavg()
    try:
        files, pans = build(scratch, "scene", False), build(scratch, "pan", True)
        prof = {}
        # With numba's cache as it is, then empty: the plugin installed from its zip starts without one,
        # so its first decode compiles the decoder's numba functions.
        for case, extra in (("cached", {}), ("first", {"NUMBA_CACHE_DIR": str(scratch / "numba-cache")})):
            env = dict(os.environ, PYTHONPATH=str(ROOT), HSIC_DEVICE="cpu", **extra)
            done = subprocess.run([sys.executable, __file__, "--profile", str(files["hsic"])[:-4]], env=env,
                                  capture_output=True, text=True, check=True)
            prof[case] = json.loads(done.stdout.strip().splitlines()[-1])
        sizes = {name: sum(p.stat().st_size for p in path.parent.glob(path.name.split(".")[0] + ".*")
                           if p.suffix in (".hsic", ".vrt") or p == path)
                 for name, path in files.items()}
        results = {name: {loader: measure(path, pans[name], args.runs, scratch, loader)
                          for loader in ("layer", "processing")} for name, path in files.items()}
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    report = markdown(results, sizes, prof, load, args)
    print(report)
    if args.out:
        Path(args.out).write_text(report)
        Path(args.out).with_suffix(".json").write_text(json.dumps(results, indent=1) + "\n")
    return 0


def profile_decode(hsic: str) -> dict:
    """Outside QGIS, in a fresh process: the cold decode path's steps, and the engine functions that take
    most of decoding every tile of the scene (cProfile, own time)."""
    import cProfile
    import pstats

    t0 = time.perf_counter()
    import hsi_gdal  # noqa: F401

    t1 = time.perf_counter()
    from hsi_gdal import pixelfn

    decoder = pixelfn.decoder_for(hsic)  # imports the decode path, reads the header, loads the codec
    t2 = time.perf_counter()
    prof = cProfile.Profile()
    prof.enable()
    decoder.read(0, 0, None, None, [0])  # every tile decoded once; one band made from the components
    prof.disable()
    t3 = time.perf_counter()
    stats = pstats.Stats(prof).stats
    top = sorted(stats.items(), key=lambda kv: -kv[1][2])[:3]
    return {"import_hsi_gdal_s": t1 - t0, "open_decoder_s": t2 - t1, "decode_all_tiles_s": t3 - t2,
            "tiles": decoder.decoded_tiles, "torch_imported": "torch" in sys.modules,
            "top": [(name if f == "~" else f"{Path(f).parent.name}/{Path(f).name}:{name}", own)
                    for (f, _, name), (_, _, own, *_) in top]}


def markdown(results: dict, sizes: dict, prof: dict, load: tuple, args) -> str:
    def med(recs, key):
        return float(np.median([r[key] for r in recs]))

    rows = []
    for name, by in results.items():
        recs, proc = by["layer"], by["processing"]
        main_thread = any(r["decode_calls_on_main_thread"] for r in recs)
        rows.append(
            f"| {name} | {sizes[name] * 8 / (SIZE * SIZE * 224):.3f} | {med(recs, 'qgis_ready_s'):.2f} | "
            f"{med(recs, 'add_s'):.3f} | {med(proc, 'add_s'):.2f} ({med(proc, 'add_decode_calls'):.0f}) | "
            f"{med(recs, 'cold_render_s'):.2f} | {med(recs, 'warm_render_s'):.3f} | {med(recs, 'pan_render_s'):.2f} | "
            f"{max(r['pan_max_gui_gap_s'] for r in recs) * 1000:.0f} | {'yes' if main_thread else 'no'} | "
            f"{'yes' if any(r['file_rewritten'] for r in recs) else 'no'} / "
            f"{'yes' if any(r['file_rewritten'] for r in proc) else 'no'} |")
    h = results["hsic"]["layer"]
    proc = results["hsic"]["processing"]
    verdict = [
        ("add a layer (Add Raster Layer, drag-and-drop)", med(h, "add_s"), 1.0),
        ("add a layer through Processing (hsic:open)", med(proc, "add_s"), 1.0),
        ("first 1024 x 1024 render, cold", med(h, "cold_render_s"), 2.0),
        ("the same render, warm", med(h, "warm_render_s"), 0.3),
    ]
    cpu = platform.processor() or platform.machine()
    c, f = prof["cached"], prof["first"]
    return "\n".join([
        "# QGIS: adding and drawing a 512 x 512 x 224 layer",
        "",
        f"Command: `QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_qgis.py --runs {args.runs}"
        f"{' --out ' + args.out if args.out else ''}` (about 5 min on 2 cores).",
        f"Date: {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}. Machine: {os.cpu_count()} CPU cores ({cpu}), "
        f"shared with other jobs (load average {load[0]:.1f} at the start, {os.getloadavg()[0]:.1f} at the end), "
        "no GPU used (HSIC_DEVICE=cpu), QGIS 3.22, GDAL 3.6.",
        "",
        "Scene: the bundled EnMAP sample (hsi_gdal/sample) mirrored to 512 x 512 x 224 Int16, compressed",
        "with the default codec at its default quality; the same scene as a tiled DEFLATE GeoTIFF, and as",
        "lossy JPEG 2000 (GDAL's JP2OpenJPEG, QUALITY set to the .hsic's share of the raw size, 256 x 256",
        "blocks). bpppc counts the files the layer reads (the .hsic and its sidecar).",
        "Each figure is the median of fresh processes (QGIS offscreen, `import hsi_gdal` as the plugin",
        f"does at start; {args.runs} per format and loader); seconds unless stated:",
        "",
        "* **QGIS ready**: process start to QgsApplication initialised and the plugin's import done.",
        "* **add layer**: `QgsRasterLayer(path)` + `addMapLayer` (Add Raster Layer, drag-and-drop, the",
        "  Browser: the default style X.hsic.qml is loaded). **through Processing**: for .hsic, running",
        "  hsic:open and adding the layer it hands over (made with its default style); for the others,",
        "  the way Processing loads a file given as a path (`QgsProcessingUtils.mapLayerFromString`, no",
        "  default style); in brackets, pixel-function calls made while adding, on the main thread.",
        "* **cold**: the first 1024 x 1024 render of \"zoom to layer\" with `QgsMapRendererParallelJob`, as",
        "  the canvas renders (the decoder's imports and every tile's decode included); **warm**: the same",
        "  render again; **pan**: imports done, a view of the bottom-right quarter of another file of the",
        "  same kind whose tiles were never decoded.",
        "* **GUI stall**: the longest gap between ticks of a 5 ms timer on the main thread's event loop",
        "  while the pan renders; **main thread**: whether any decode ran on it during the renders.",
        "* **file rewritten**: whether the file opened (the sidecar, for .hsic) changed on disk during the",
        "  process (GDAL saving the statistics or histograms QGIS computed into it).",
        "",
        "| format | bpppc | QGIS ready | add layer | through Processing (decodes) | first render, cold | "
        "same render, warm | pan to unseen tiles | GUI stall (ms) | decoded on main thread | "
        "file rewritten (add layer / Processing) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
        *rows,
        "",
        "## Targets (issue 16), .hsic",
        "",
        "| | measured | target | |",
        "|---|---|---|---|",
        *[f"| {what} | {got:.2f} s | <= {target} s | {'met' if got <= target else 'missed'} |"
          for what, got, target in verdict],
        f"| pan to unseen tiles keeps the GUI responsive | stall {max(r['pan_max_gui_gap_s'] for r in h) * 1000:.0f} ms, "
        f"decoded on main thread: {'yes' if any(r['decode_calls_on_main_thread'] for r in h) else 'no'} | "
        "decode off the main thread | "
        f"{'met' if not any(r['decode_calls_on_main_thread'] for r in h) else 'missed'} |",
        "",
        "## Where the cold render's time goes (.hsic)",
        "",
        f"In QGIS (medians): {med(h, 'cold_before_first_decode_s'):.2f} s before the first pixel-function call; "
        f"the first call (it opens the decoder, importing the decode path, and decodes every tile, as the "
        f"view holds them all) {med(h, 'cold_first_decode_call_s'):.2f} s; the other "
        f"{med(h, 'cold_decode_calls') - 1:.0f} calls (other bands, made from the cached components) "
        f"{med(h, 'cold_other_decode_calls_s'):.2f} s. torch imported: "
        f"{'yes' if any(r['torch_imported'] for r in h) else 'no'}.",
        "",
        f"Outside QGIS, in a fresh process: `import hsi_gdal` {c['import_hsi_gdal_s']:.2f} s, opening the decoder "
        f"{c['open_decoder_s']:.2f} s, decoding all {c['tiles']} tiles {c['decode_all_tiles_s']:.2f} s "
        f"(one call; tiles decoded on every core by engine/parallel.py, so the profile of the calling thread shows the wait), of which (own time) " + ", ".join(f"`{f}` {t:.2f} s" for f, t in c["top"]) + ".",
        "",
        "The first decode after installing the plugin from its zip finds no numba cache beside the plugin's",
        f"copy of the engine and compiles the decoder first: with an empty cache (NUMBA_CACHE_DIR), opening the "
        f"decoder took {f['open_decoder_s']:.2f} s and decoding all tiles {f['decode_all_tiles_s']:.2f} s "
        "(the numba cache is then written, and later starts are as above).",
        "",
    ])


if __name__ == "__main__":
    sys.exit(main())
