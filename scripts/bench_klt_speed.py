"""Speed of the default codec ``klt`` against GDAL's JPEG 2000 and PCA + JPEG 2000, whole processes included.

    .venv/bin/python scripts/bench_klt_speed.py [--scene TRAIN.tif] [--runs 3] [--root CHECKOUT] [--out DIR]

A 512 x 512 cube with all bands of a train/ scene (default enmap_potsdam_a, 224 bands, Int16) is built by
mirroring the scene (alternate copies flipped, so that no seam repeats), written as a tiled GeoTIFF.
Each command then runs in a fresh process (Python start, imports and Numba's cache load included), as a
user runs it; the table gives the minimum wall time over ``--runs`` and the CPU seconds of that run:

* ``hsic compress`` at the default quality and with ``--bpppc 0.25`` (the rate search included);
* ``hsic decompress`` to a GeoTIFF;
* a first look: open the .hsic and read a 256 x 256 window of 3 bands (what a first render asks for);
* ``gdal_translate`` to JPEG 2000 at the rate of the klt file, and back to a GeoTIFF;
* pca-jpeg2000 (hsi_gdal/tools/baselines.py, 16 components at 0.25 bpppc) in one process: its encode time
  counts the PCA and the final JPEG 2000 write only, as ``hsic bench`` counts it.

``--root`` runs the hsic commands of another checkout (for before/after numbers), with this venv.
On a machine shared with other work, compare CPU seconds and runs made close together.
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from hsi_gdal.gdal_env import gdal  # noqa: E402

DEFAULT_SCENE = os.path.join(ROOT, "..", "shared", "data", "hsi", "train", "enmap_potsdam_a.tif")
# Runs a checkout's CLI (``hsic``) from its own folder: the same launcher for this checkout and another.
LAUNCH = "import sys; sys.path.insert(0, sys.argv.pop(1)); from hsi_gdal.tools.cli import main; sys.exit(main())"
FIRST_LOOK = """
import sys; sys.path.insert(0, sys.argv[1])
import hsi_gdal
ds = hsi_gdal.Open(sys.argv[2])
a = [ds.GetRasterBand(b).ReadAsArray(128, 128, 256, 256) for b in (30, 60, 90)]
"""


def build_cube(scene: str, path: str, size: int = 512) -> None:
    src = gdal.Open(scene)
    a = src.ReadAsArray()
    _, h, w = a.shape
    rows = []
    for i in range(-(-size // h)):
        rows.append(np.concatenate([a[:, ::(-1 if i % 2 else 1), ::(-1 if j % 2 else 1)]
                                    for j in range(-(-size // w))], axis=2))
    cube = np.concatenate(rows, axis=1)[:, :size, :size]
    out = gdal.GetDriverByName("GTiff").Create(path, size, size, cube.shape[0], src.GetRasterBand(1).DataType,
                                               ["INTERLEAVE=BAND", "TILED=YES"])
    out.SetProjection(src.GetProjection())
    out.SetGeoTransform(src.GetGeoTransform())
    for i in range(cube.shape[0]):
        sb, ob = src.GetRasterBand(i + 1), out.GetRasterBand(i + 1)
        ob.WriteArray(cube[i])
        if sb.GetNoDataValue() is not None:
            ob.SetNoDataValue(sb.GetNoDataValue())
        ob.SetDescription(sb.GetDescription())
        ob.SetMetadata(sb.GetMetadata())
        del sb, ob
    out = None


def timed(cmd: list[str], runs: int, before=None) -> tuple[float, float]:
    """(min wall seconds, CPU seconds of that run) of a command run ``runs`` times in fresh processes."""
    best = (float("inf"), 0.0)
    for _ in range(runs):
        if before:
            before()
        r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        wall = time.perf_counter() - t0
        r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)
        best = min(best, (wall, cpu))
    return best


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--scene", default=DEFAULT_SCENE)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--root", default=ROOT, help="checkout whose hsic commands are timed")
    ap.add_argument("--out", help="folder for the cube and outputs (default: a temporary one)")
    a = ap.parse_args(argv)
    work = a.out or tempfile.mkdtemp(prefix="klt_speed_")
    os.makedirs(work, exist_ok=True)
    cube = os.path.join(work, "cube512.tif")
    if not os.path.exists(cube):
        build_cube(a.scene, cube)
    raw_mb = os.path.getsize(cube) / 1e6  # uncompressed tiled GeoTIFF: about the raw cube
    py = sys.executable
    hsic = [py, "-c", LAUNCH, os.path.abspath(a.root)]
    f = lambda name: os.path.join(work, name)  # noqa: E731
    rm = lambda *names: lambda: [os.remove(f(n)) for n in names if os.path.exists(f(n))]  # noqa: E731
    rows = []

    def row(name, cmd, before=None, mb=raw_mb):
        wall, cpu = timed(cmd, a.runs, before)
        rows.append((name, wall, cpu, mb / wall))
        print(f"{name}: {wall:.2f} s wall, {cpu:.2f} CPU s", flush=True)

    row("klt compress (q3)", hsic + ["compress", "-q", cube, f("q3.hsic")], rm("q3.hsic"))
    row("klt compress --bpppc 0.25", hsic + ["compress", "-q", "--bpppc", "0.25", cube, f("r.hsic")], rm("r.hsic"))
    row("klt decompress (0.25)", hsic + ["decompress", "-q", f("r.hsic"), f("r.tif")], rm("r.tif"))
    row("klt first look: 256 x 256 x 3 bands (4 tiles)", [py, "-c", FIRST_LOOK, os.path.abspath(a.root), f("r.hsic")])
    quality = 100.0 * os.path.getsize(f("r.hsic")) / os.path.getsize(cube)  # the same bytes as the klt file
    opts = ["-co", "CODEC=JP2", "-co", "REVERSIBLE=NO", "-co", "YCC=NO", "-co", f"QUALITY={quality:.4f}"]
    row("gdal_translate -> JPEG 2000", ["gdal_translate", "-q", "-of", "JP2OpenJPEG", *opts, cube, f("j.jp2")],
        rm("j.jp2"))
    row("gdal_translate JPEG 2000 -> GeoTIFF", ["gdal_translate", "-q", f("j.jp2"), f("j.tif")], rm("j.tif"))
    from hsi_gdal.tools import baselines

    pca_dir = os.path.join(work, "pca")
    best = None
    for _ in range(a.runs):
        if os.path.isdir(pca_dir):
            for n in os.listdir(pca_dir):
                os.remove(os.path.join(pca_dir, n))
        os.makedirs(pca_dir, exist_ok=True)
        c = baselines.pca_jpeg2000(cube, pca_dir, 0.25)
        best = c if best is None or c.encode_s < best.encode_s else best
    rows.append(("pca-jpeg2000 encode (PCA + final JP2 write, in process)", best.encode_s, float("nan"),
                 raw_mb / best.encode_s))
    rows.append(("pca-jpeg2000 decode (in process)", best.decode_s, float("nan"), raw_mb / best.decode_s))

    print(f"\n512 x 512 cube of {os.path.basename(a.scene)}, {raw_mb:.1f} MB; checkout {a.root}; "
          f"min over {a.runs} runs; load average {os.getloadavg()[0]:.1f}\n")
    print("| command | wall s | CPU s | MB/s (wall) |\n|---|---|---|---|")
    for name, wall, cpu, mbs in rows:
        print(f"| {name} | {wall:.2f} | {'-' if cpu != cpu else f'{cpu:.2f}'} | {mbs:.1f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
