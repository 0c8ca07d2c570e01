"""Overviews: their share of the file (and of the rate), and what a zoomed-out read decodes.

Builds a mosaic of the training EnMAP scenes (mirrored tiles of enmap_potsdam_a and _b, all 224 bands,
georeferenced like potsdam_a) of SIZE x SIZE pixels, compresses it with the default codec with and
without overviews, and reads it through the sidecar at full resolution and zoomed out.
Writes docs/benchmarks/overviews.md.

    PYTHONPATH=. QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_overviews.py [SIZE]
"""

from __future__ import annotations

import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
# The shared data folder beside the clone; HSIC_DATA overrides it (e.g. from a git worktree).
TRAIN = Path(os.environ.get("HSIC_DATA", ROOT.parent / "shared" / "data" / "hsi")) / "train"


def mosaic(size: int, path: str) -> None:
    from osgeo import gdal

    a = gdal.Open(str(TRAIN / "enmap_potsdam_a.tif"))
    b = gdal.Open(str(TRAIN / "enmap_potsdam_b.tif"))
    pieces = [a.ReadAsArray(), b.ReadAsArray()]
    out = gdal.GetDriverByName("GTiff").Create(path, size, size, a.RasterCount, a.GetRasterBand(1).DataType,
                                               ["TILED=YES", "COMPRESS=DEFLATE"])
    out.SetGeoTransform(a.GetGeoTransform())
    out.SetProjection(a.GetProjection())
    for i in range(a.RasterCount):
        sb, ob = a.GetRasterBand(i + 1), out.GetRasterBand(i + 1)
        ob.SetDescription(sb.GetDescription())
        ob.SetMetadata(sb.GetMetadata())
        if sb.GetNoDataValue() is not None:
            ob.SetNoDataValue(sb.GetNoDataValue())
        del sb, ob
    y = 0
    k = 0
    while y < size:  # rows of tiles, each tile a (possibly flipped) scene, so edges stay continuous-ish
        p = pieces[k % 2]
        h = p.shape[1]
        x = 0
        row = []
        while x < size:
            t = p if (x // p.shape[2]) % 2 == 0 else p[:, :, ::-1]
            row.append(t)
            x += t.shape[2]
        strip = np.concatenate(row, axis=2)[:, :, :size][:, :min(h, size - y)]
        out.WriteRaster(0, y, size, strip.shape[1], strip.tobytes(),
                        band_list=list(range(1, a.RasterCount + 1)))
        y += strip.shape[1]
        k += 1
    out = None


def main() -> int:
    size = int(sys.argv[1]) if len(sys.argv) > 1 else 512
    import hsi_gdal
    from engine.format.container import open_hsic
    from engine.metrics import bpppc
    from hsi_gdal import pixelfn
    from osgeo import gdal

    tmp = tempfile.mkdtemp(prefix="bench_ovr_")
    src = os.path.join(tmp, "mosaic.tif")
    mosaic(size, src)
    with_ovr, without = os.path.join(tmp, "with.hsic"), os.path.join(tmp, "without.hsic")
    from engine.pipeline import compress_scene
    from engine.registry import DEFAULT_CODEC, get_codec
    from hsi_gdal.source import RasterSource

    get_codec(DEFAULT_CODEC)  # load torch and the weights before timing anything
    s = RasterSource(src)
    t0 = time.perf_counter()
    compress_scene(s.info, s.read_window, without, DEFAULT_CODEC, overviews=())
    t_without = time.perf_counter() - t0
    t0 = time.perf_counter()
    hsi_gdal.Translate(with_ovr, src)
    t_with = time.perf_counter() - t0
    with open_hsic(with_ovr) as r:
        start, end = r.trailer_range
        h = r.header
        from engine.overviews import read_levels

        factors = sorted(read_levels(r))
    n_with, n_without = os.path.getsize(with_ovr), os.path.getsize(without)

    g = gdal.Open(with_ovr + ".vrt")
    t0 = time.perf_counter()
    g.ReadAsArray(buf_xsize=size // 4, buf_ysize=size // 4)
    t_ovr = time.perf_counter() - t0
    full_tiles_ovr = pixelfn.decoder_for(with_ovr).decoded_tiles
    t0 = time.perf_counter()
    g.ReadAsArray()
    t_full = time.perf_counter() - t0
    full_tiles = pixelfn.decoder_for(with_ovr).decoded_tiles
    del g

    lines = [
        "# Overviews in .hsic files: cost and effect",
        "",
        f"Command: `PYTHONPATH=. QT_QPA_PLATFORM=offscreen .venv/bin/python scripts/bench_overviews.py {size}`",
        "",
        f"Scene: {size} x {size} x {h.bands} mosaic of the training EnMAP scenes (potsdam_a/_b, mirrored tiles),",
        f"codec {h.codec} quality {h.quality}, tiles {h.tile_rows} x {h.tile_cols}, stored levels: factors {factors}.",
        "Machine: 2 shared CPU cores, no GPU used.",
        "",
        "| | bytes | bpppc |",
        "|---|---|---|",
        f"| without overviews | {n_without} | {bpppc(n_without, h.rows, h.cols, h.bands):.4f} |",
        f"| with overviews (default) | {n_with} | {bpppc(n_with, h.rows, h.cols, h.bands):.4f} |",
        f"| overview section | {end - start} | share of the file: {100 * (end - start) / n_with:.2f} % |",
        "",
        f"Compress time: {t_with:.1f} s with overviews, {t_without:.1f} s without.",
        "",
        "Reads through the sidecar (`gdal.Open(X.hsic.vrt).ReadAsArray`, one fresh process):",
        "",
        "| read | full-resolution tiles decoded | time |",
        "|---|---|---|",
        f"| whole scene into a {size // 4} x {size // 4} buffer (zoomed out 4x) | {full_tiles_ovr} | {t_ovr:.2f} s |",
        f"| whole scene at full resolution | {full_tiles - full_tiles_ovr} | {t_full:.2f} s |",
        "",
    ]
    out = ROOT / "docs" / "benchmarks" / "overviews.md"
    out.write_text("\n".join(lines))
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
