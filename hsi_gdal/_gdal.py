"""The one place that imports osgeo: GDAL with exceptions on, and path checks shared by the layer."""

from __future__ import annotations

import os
from contextlib import contextmanager

from osgeo import gdal

from engine.errors import HSICIOError, InputError

gdal.UseExceptions()

GDAL_TYPES = {
    "uint8": gdal.GDT_Byte, "int8": getattr(gdal, "GDT_Int8", gdal.GDT_Byte), "uint16": gdal.GDT_UInt16,
    "int16": gdal.GDT_Int16, "uint32": gdal.GDT_UInt32, "int32": gdal.GDT_Int32,
    "float32": gdal.GDT_Float32, "float64": gdal.GDT_Float64,
}
GDAL_TYPE_NAMES = {v: gdal.GetDataTypeName(v) for v in GDAL_TYPES.values()}


def open_raster(path: str):
    """osgeo dataset for any GDAL raster; one-line errors for missing files and non-rasters."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise HSICIOError(f"{path}: no such file")
    try:
        ds = gdal.Open(path)
    except RuntimeError as e:
        raise InputError(f"{path}: not a raster GDAL can read ({str(e).strip()})") from None
    if ds is None or ds.RasterCount == 0:
        raise InputError(f"{path}: not a raster GDAL can read")
    return ds


# GDAL's block cache defaults to 5 % of RAM (over 1 GB here): while streaming a large scene it would fill
# up and make peak memory grow with the scene. Translate caps it while it works (restored afterwards).
STREAM_CACHE_BYTES = 128 << 20


@contextmanager
def cache_limit(nbytes: int = STREAM_CACHE_BYTES):
    """Lower GDAL's block cache to at most ``nbytes`` for the duration of the block (process-wide)."""
    before = gdal.GetCacheMax()
    gdal.SetCacheMax(min(before, nbytes))
    try:
        yield
    finally:
        gdal.SetCacheMax(before)
