"""Header bytes of real scenes: deflated JSON (header encoding 0, files before the compact header)
against the compact header (encoding 1, what writers write), with the header `hsic compress` writes
for each raster (the default codec, `klt`, its
normalisation and the default tile size).

    .venv/bin/python scripts/header_size.py ../shared/data/hsi/test/*.tif ../shared/data/hsi/train/enmap_potsdam_a.tif

Prints a Markdown table (docs/benchmarks/header.md). Rasters are opened from copies in a temporary
folder, so GDAL writes no .aux.xml beside the originals.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import zlib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)


def header_of(path: str, codec: str):
    from engine.pipeline import DEFAULT_TILE, scene_header
    from engine.registry import get_codec
    from engine.tiling import TileGrid
    from hsi_gdal.source import RasterSource

    src = RasterSource(path)
    info = src.info
    grid = TileGrid(info.rows, info.cols, min(DEFAULT_TILE, info.rows), min(DEFAULT_TILE, info.cols))
    return scene_header(info, src.read_window, grid, get_codec(codec, None, "cpu"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("rasters", nargs="+")
    p.add_argument("--codec", default="klt")
    a = p.parse_args()
    print("| scene | bands | JSON | deflated JSON (old) | compact (new) | new/old | at 0.25 bpppc, old header is |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    with tempfile.TemporaryDirectory() as tmp:
        for raster in a.rasters:
            copy = os.path.join(tmp, os.path.basename(raster))
            shutil.copyfile(raster, copy)
            h = header_of(copy, a.codec)
            text = h.to_json_bytes()
            old, new = len(zlib.compress(text, 9)), len(h.to_compact_bytes())
            budget = 0.25 * h.rows * h.cols * h.bands / 8  # file bytes at 0.25 bpppc
            name = os.path.splitext(os.path.basename(raster))[0]
            print(f"| {name} | {h.bands} | {len(text)} | {old} | {new} | {new / old:.2f} | "
                  f"{100 * old / budget:.1f} % of the file (new: {100 * new / budget:.1f} %) |")
            os.remove(copy)
    return 0


if __name__ == "__main__":
    sys.exit(main())
