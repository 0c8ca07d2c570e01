"""The classical anchors at very low rates (the HiFiC codecs' range, docs/codecs.md), on the test scenes.

`hsic bench` runs JPEG 2000 from 0.125 bpppc up; the HiFiC codecs work at 0.0005-0.003 bpppc. This runs
`jpeg2000` and `pca-jpeg2000` (hsi_gdal.tools.baselines, the bench's own record) at such rates and prints one
line per scene and rate; a rate a baseline cannot reach (e.g. PCA's basis alone is larger) is reported
as skipped.

    PYTHONPATH=. .venv/bin/python scripts/lowrate_anchors.py ../shared/data/hsi/test 0.001 0.002 0.004
"""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path


def main(data: str, rates: list[float]) -> list[dict]:
    from engine.errors import InputError
    from hsi_gdal.tools.bench import run_baseline
    from hsi_gdal.gdal_env import open_raster

    out = []
    for scene in sorted(Path(data).glob("*.tif")):
        ds = open_raster(str(scene))
        ref = ds.ReadAsArray().reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
        nodata = ds.GetRasterBand(1).GetNoDataValue()
        for method in ("jpeg2000", "pca-jpeg2000"):
            for rate in rates:
                with tempfile.TemporaryDirectory() as work:
                    try:
                        rec = run_baseline(scene, scene.stem, method, rate, ref, nodata, work)
                    except InputError as e:
                        print(f"{scene.stem} {method} {rate}: skipped ({e})", flush=True)
                        continue
                keep = {k: rec[k] for k in ("scene", "method", "bpppc", "psnr_db", "sam_deg")}
                out.append({**keep, "target": rate})
                print(json.dumps(keep), flush=True)
    return out


if __name__ == "__main__":
    main(sys.argv[1], [float(r) for r in sys.argv[2:]])
