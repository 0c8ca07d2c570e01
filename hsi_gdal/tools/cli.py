"""The ``hsic`` command line: compress, decompress, info, eval, codecs, train, bench, batch, env.

Every user mistake ends in one line on stderr and a non-zero exit status, never a traceback.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import warnings
from contextlib import contextmanager
from pathlib import Path

from engine.errors import HSICError
from engine.registry import DEFAULT_TRAIN_CODEC

DEFAULT_TRAIN_DATA = "../shared/data/hsi/train"
REPO = Path(__file__).resolve().parents[2]  # the checkout holding engine/ and hsi_gdal/


@contextmanager
def _bar(args, desc: str):
    """A tqdm progress bar as a Translate-style progress callback (silent with --quiet or --json).

    The bar appears at the first tile, so an input error before any work prints only its message.
    """
    from tqdm import tqdm

    bar = None

    def progress(fraction: float) -> bool:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=100, desc=desc, unit="%", file=sys.stderr,
                       disable=args.quiet or getattr(args, "json", False),
                       bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
        bar.update(round(100 * fraction) - bar.n)
        return True

    try:
        yield progress
    finally:
        if bar is not None:
            bar.close()


def _print(args, record: dict, lines: list[str]) -> None:
    if getattr(args, "json", False):
        print(json.dumps(record, indent=2, default=str))
    else:
        print("\n".join(lines))


def cmd_compress(args) -> None:
    import hsi_gdal

    with _bar(args, "compress") as progress:
        ds = hsi_gdal.Translate(args.output, args.input, codec=args.codec, quality=args.quality,
                                device=args.device, progress=progress, weights=args.weights, bpppc=args.bpppc,
                                min_psnr=args.min_psnr, max_sam=args.max_sam, max_abs_error=args.max_abs_error)
    record = hsi_gdal.compression_record(args.output, ds.header)
    rec = {"input": args.input, "output": args.output, "sidecar": args.output + ".vrt", **record}
    _print(args, rec, [f"{hsi_gdal.compression_line(args.output, record)}; sidecar {rec['sidecar']}"])


def cmd_decompress(args) -> None:
    import hsi_gdal

    with _bar(args, "decompress") as progress:
        hsi_gdal.Translate(args.output, args.input, device=args.device, progress=progress, weights=args.weights)
    if not args.quiet:
        print(f"{args.output}: written")


def cmd_info(args) -> None:
    import hsi_gdal
    from engine.metrics import bpppc

    ds = hsi_gdal.Open(args.file)
    rec = {"file": args.file, "bands": ds.RasterCount, "rows": ds.RasterYSize, "cols": ds.RasterXSize,
           "dtype": ds.dtype, "nodata": ds.GetRasterBand(1).GetNoDataValue(),
           "geotransform": list(ds.GetGeoTransform()), "crs_wkt": ds.GetProjection(),
           "metadata": ds.GetMetadata(), "bytes": os.path.getsize(args.file)}
    lines = [f"{args.file}: {ds.RasterCount} bands x {ds.RasterYSize} rows x {ds.RasterXSize} cols, {ds.dtype}, "
             f"nodata {rec['nodata']}", f"geotransform {rec['geotransform']}"]
    if hasattr(ds, "header"):
        h = ds.header
        rec.update(codec=h.codec, quality=h.quality, tile=[h.tile_rows, h.tile_cols],
                   weights_sha256=h.weights_sha256, max_abs_error=h.max_abs_error,
                   bpppc=bpppc(rec["bytes"], h.rows, h.cols, h.bands))
        bound = "" if h.max_abs_error is None else f", max abs error {h.max_abs_error:g}"
        lines.append(f"codec {h.codec} quality {h.quality}{bound}, tiles {h.tile_rows}x{h.tile_cols}, "
                     f"{rec['bytes']} bytes = {rec['bpppc']:.4f} bpppc")
    crs_name = rec["crs_wkt"].split('"')[1] if '"' in rec["crs_wkt"] else "none"
    lines.append(f"CRS {crs_name}")
    _print(args, rec, lines)


def cmd_eval(args) -> None:
    import hsi_gdal

    r = hsi_gdal.evaluate(args.reference, args.candidate, device=args.device)
    _print(args, r, [
        f"PSNR (data-range peak)   {r['psnr_db']:.2f} dB",
        f"PSNR (per-band peak)     {r['psnr_band_peak_db']:.2f} dB",
        f"SSIM (mean over bands)   {r['ssim']:.4f}",
        f"SAM (mean)               {r['sam_deg']:.3f} deg",
        f"max abs error            {r['max_abs_error']:.6g}",
        f"rate (bytes on disk)     {r['bpppc']:.4f} bpppc, {r['bytes']} bytes, ratio {r['compression_ratio']:.1f}:1",
    ])


def cmd_codecs(args) -> None:
    from engine.registry import DEFAULT_CODEC, list_codecs

    infos = list_codecs()
    rec = [{"id": i.id, "title": i.title, "paper": i.paper, "qualities": list(i.qualities),
            "default_quality": i.default_quality, "default": i.id == DEFAULT_CODEC} for i in infos]
    _print(args, {"codecs": rec}, [f"{i.id:24s} qualities {','.join(map(str, i.qualities))} "
                                   f"(default {i.default_quality})  {i.title}" for i in infos])


def _arch_overrides(items: list[str] | None) -> dict | None:
    """``KEY=VALUE`` pairs of ``hsic train --arch``; values are JSON (numbers, true/false) or strings."""
    out = {}
    for item in items or ():
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise HSICError(f"--arch wants KEY=VALUE, not {item!r}")
        try:
            out[key] = json.loads(value)
        except ValueError:
            out[key] = value
    return out or None


def cmd_train(args) -> None:
    import hsi_gdal
    from engine.registry import get_info
    from hsi_gdal.tools.training_data import dataset_scenes

    root = args.root or args.data or DEFAULT_TRAIN_DATA
    scenes = dataset_scenes(args.dataset, root, args.split)
    info = get_info(args.codec)
    qualities = [info.check_quality(args.quality)] if args.quality is not None else list(info.qualities)
    if args.init and len(qualities) > 1:
        raise HSICError("--init fine-tunes one quality: give --quality too")
    from tqdm import tqdm

    print(f"training {args.codec} on {len(scenes)} scenes from {root}", file=sys.stderr)
    for q in qualities:
        bar = tqdm(total=None, desc=f"train {args.codec} q{q}", disable=args.quiet, file=sys.stderr)

        def progress(step, total, m, bar=bar):
            if bar.total is None:
                bar.reset(total=total)
                bar.update(step - 1)  # resumed runs start past 0
            bar.update(1)
            if step % 50 == 0:
                bar.set_postfix(psnr=f"{m['psnr']:.2f}", bpppc=f"{m['bpppc']:.3f}")

        rec = hsi_gdal.train(args.codec, q, scenes, args.out, steps=args.steps, batch=args.batch, lr=args.lr,
                             seed=args.seed, device=args.device, init=args.init, arch=_arch_overrides(args.arch),
                             stage=args.stage, gan=args.gan, resume=args.resume,
                             checkpoint_every=args.checkpoint_every, progress=progress)
        bar.close()
        f = rec["final"]
        print(f"{args.out}/{rec['weights_file']}: training estimate {-10 * math.log10(max(f['mse'], 1e-12)):.2f} dB "
              f"at {f['bpppc']:.3f} bpppc (noisy-latent estimate; measure with `hsic eval`)")


def cmd_bench(args) -> None:
    from hsi_gdal.tools.bench import main_args

    main_args(args)


def cmd_env(args) -> None:
    import sysconfig

    from hsi_gdal.gdal_env import env_lines

    # GDAL tools embed the system Python: it needs the repo (decoder) and the venv (torch, compressai).
    site = sysconfig.get_paths()["purelib"]
    print("\n".join(env_lines() + [f"export PYTHONPATH={site}:{REPO}${{PYTHONPATH:+:$PYTHONPATH}}"]))


def cmd_batch(args) -> None:
    from tqdm import tqdm

    from hsi_gdal.tools.batch import run_batch

    bar = None

    def progress(done, total, rec):
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, desc="batch", unit="file", file=sys.stderr, disable=args.quiet)
        if rec["status"] == "failed":  # one line per bad file; the others go on
            tqdm.write(f"hsic batch: error: {rec['input']}: {rec['error']}", file=sys.stderr)
        bar.update(1)

    try:
        recs = run_batch(args.input_dir, args.output_dir, codec=args.codec, quality=args.quality,
                         scheduler=args.scheduler, workers=args.workers, device=args.device, progress=progress)
    finally:
        if bar is not None:
            bar.close()
    counts = {s: sum(r["status"] == s for r in recs) for s in ("compressed", "skipped", "failed")}
    if not args.quiet:
        print(f"{args.output_dir}: {counts['compressed']} compressed, {counts['skipped']} already complete, "
              f"{counts['failed']} failed; manifest {os.path.join(args.output_dir, 'manifest.csv')} (and .json)")
    if counts["failed"]:
        raise HSICError(f"{counts['failed']} of {len(recs)} files failed (see the manifest)")


def build_parser() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    device = argparse.ArgumentParser(add_help=False)
    device.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"],
                        help="where networks run (auto: CUDA when torch sees a GPU)")
    as_json = argparse.ArgumentParser(add_help=False)
    as_json.add_argument("--json", action="store_true", help="print a JSON record")

    p = argparse.ArgumentParser(prog="hsic", description="Learned hyperspectral image compression.")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    c = sub.add_parser("compress", parents=[common, device, as_json], help="compress a raster to .hsic")
    c.add_argument("input")
    c.add_argument("output", help="OUT.hsic (the sidecar OUT.hsic.vrt is written beside it)")
    c.add_argument("--codec", default=None, help="codec id (see `hsic codecs`; default klt)")
    c.add_argument("--quality", type=int, default=None, help="quality level of the codec (default: its default)")
    c.add_argument("--weights", default=None, help="your own weights file (from `hsic train`) for this codec and quality")
    c.add_argument("--bpppc", type=float, default=None,
                   help="rate control: the best quality whose file is at most this many bits/pixel/band")
    c.add_argument("--min-psnr", type=float, default=None,
                   help="rate control: the cheapest quality with at least this PSNR (dB) on every tile")
    c.add_argument("--max-sam", type=float, default=None,
                   help="rate control: the cheapest quality with at most this mean SAM (deg) on every tile")
    c.add_argument("--max-abs-error", type=float, default=None, metavar="E",
                   help="error-bounded mode: every sample decodes within E of the source, in its units "
                        "(0: lossless); the learned codec plus a coded residual (no rate or quality target)")
    c.set_defaults(func=cmd_compress)

    d = sub.add_parser("decompress", parents=[common, device], help="decode a .hsic to GeoTIFF or ENVI")
    d.add_argument("input")
    d.add_argument("output", help="OUT.tif (GeoTIFF), or OUT.img / .bsq / .dat (ENVI BSQ with OUT.hdr)")
    d.add_argument("--weights", default=None,
                   help="the weights file the .hsic was written with, if not at its recorded path nor beside it")
    d.set_defaults(func=cmd_decompress)

    i = sub.add_parser("info", parents=[common, as_json], help="describe a .hsic file or a raster")
    i.add_argument("file")
    i.set_defaults(func=cmd_info)

    e = sub.add_parser("eval", parents=[common, device, as_json], help="quality and true rate of a candidate")
    e.add_argument("reference")
    e.add_argument("candidate", help="a .hsic file or a raster")
    e.set_defaults(func=cmd_eval)

    k = sub.add_parser("codecs", parents=[common, as_json], help="list the codecs and their qualities")
    k.set_defaults(func=cmd_codecs)

    t = sub.add_parser("train", parents=[common, device], help="train a codec's weights")
    t.add_argument("--codec", default=DEFAULT_TRAIN_CODEC)
    t.add_argument("--quality", type=int, default=None, help="one quality (default: all)")
    t.add_argument("--dataset", default="folder", choices=["folder", "hyspecnet11k"],
                   help="folder: every raster under --root; hyspecnet11k: the benchmark's patches and splits")
    t.add_argument("--root", default=None, help=f"dataset folder (default {DEFAULT_TRAIN_DATA})")
    t.add_argument("--data", default=None, help=argparse.SUPPRESS)  # older spelling of --root
    t.add_argument("--split", default="easy", choices=["easy", "hard"], help="HySpecNet-11k split (default easy)")
    t.add_argument("--out", default="runs", help="folder for weights and training records (default runs/)")
    t.add_argument("--steps", type=int, default=None, help="training steps (default: the codec's recipe)")
    t.add_argument("--batch", type=int, default=None, help="samples per step (default: the codec's recipe)")
    t.add_argument("--init", default=None, help="a weights file to fine-tune instead of training from scratch")
    t.add_argument("--arch", action="append", default=None, metavar="KEY=VALUE",
                   help="change one key of the recipe's architecture (repeatable), e.g. an ablation: "
                        "--arch drf=false --arch depths=1 for mdim-drf")
    t.add_argument("--resume", action="store_true",
                   help="continue an interrupted run from its checkpoint in --out")
    t.add_argument("--checkpoint-every", type=int, default=500, help="steps between checkpoints (default 500)")
    t.add_argument("--stage", default=None,
                   help="training stage, for codecs trained in stages (s2cnet: spectral, then joint "
                        "with --init the spectral file; default: the last stage)")
    t.add_argument("--gan", action="store_true",
                   help="adversarial stage (hific-se, hific-3d): train a discriminator alongside; use with --init")
    t.add_argument("--lr", type=float, default=1e-3)
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=cmd_train)

    ba = sub.add_parser("batch", parents=[common, device], help="compress a folder tree on Dask (resumable)")
    ba.add_argument("input_dir")
    ba.add_argument("output_dir", help="mirrors INPUT_DIR with .hsic files, plus manifest.csv/.json")
    ba.add_argument("--scheduler", default=None, help="Dask scheduler address (default: a local cluster)")
    ba.add_argument("--workers", type=int, default=2, help="local cluster workers (default 2)")
    ba.add_argument("--codec", default=None, help="codec id (see `hsic codecs`; default klt)")
    ba.add_argument("--quality", type=int, default=None, help="quality level of the codec")
    ba.set_defaults(func=cmd_batch)

    b = sub.add_parser("bench", parents=[common], help="rate-distortion and speed of codecs and baselines")
    b.add_argument("--codecs", nargs="+", default=None,
                   help="codec ids and baselines (jpeg2000, pca-jpeg2000, deflate); default: all")
    b.add_argument("--data", default=str(REPO.parent / "shared" / "data" / "hsi" / "test"),
                   help="folder of scenes (*.tif); default ../shared/data/hsi/test")
    b.add_argument("--out", default=str(REPO / "docs" / "benchmarks"), help="where the report goes")
    b.add_argument("--quick", action="store_true", help="2 scenes, 64 x 64 crops, 3 rates per baseline")
    b.set_defaults(func=cmd_bench)

    v = sub.add_parser("env", help="print the environment that lets GDAL tools open sidecars")
    v.set_defaults(func=cmd_env)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    # A warning is one line too (e.g. a CRS the output cannot keep), not Python's file:line form.
    before = warnings.formatwarning
    warnings.formatwarning = lambda message, *rest, **kw: f"hsic {args.command}: warning: {message}\n"
    try:
        args.func(args)
    except HSICError as e:
        print(f"hsic {args.command}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(f"hsic {args.command}: interrupted", file=sys.stderr)
        return 130
    finally:
        warnings.formatwarning = before
    return 0


if __name__ == "__main__":
    sys.exit(main())
