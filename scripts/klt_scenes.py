"""Reading a scene for the KLT scripts: normalised, nodata-filled float32 cube, valid mask and the affine map."""

from __future__ import annotations

import numpy as np
from osgeo import gdal

gdal.SetConfigOption("GDAL_PAM_ENABLED", "NO")  # never leave .aux.xml files beside shared data

from engine.normalise import fill_invalid, valid_mask, valid_range


def load_scene(path: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, float, float]:
    """(x normalised float32 (bands, rows, cols), valid, raw cube, lo, hi) with x = (raw - lo) / (hi - lo)."""
    ds = gdal.Open(path)
    raw = ds.ReadAsArray().reshape(ds.RasterCount, ds.RasterYSize, ds.RasterXSize)
    nodata = ds.GetRasterBand(1).GetNoDataValue()
    valid = valid_mask(raw, nodata)
    lo, hi = valid_range(raw, valid)
    x = ((raw.astype(np.float64) - lo) / (hi - lo if hi > lo else 1.0)).astype(np.float32)
    fill_invalid(x, valid)
    del ds
    return x, valid, raw, lo, hi
