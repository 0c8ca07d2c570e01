"""GDAL for hsi_gdal, the one module that imports osgeo: exceptions on, the data type tables, opening a
raster with one-line errors, a scoped block-cache limit, and the configuration that lets GDAL run the
decoder behind sidecars (and nothing else). Every other module takes ``gdal`` from here."""

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

TRUSTED_MODULE = "hsi_gdal.pixelfn"
TRUSTED_MODULES_KEY = "GDAL_VRT_PYTHON_TRUSTED_MODULES"


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


@contextmanager
def collect_errors():
    """Within the block, GDAL errors go to the yielded list instead of raising or printing.

    For closing a dataset being written: GDAL reports the last writes' failures (a full disk) only while
    closing, where an exception could only be printed ("Exception ignored"); the caller checks the list.
    """
    errors: list[str] = []

    def handler(err_class, err_no, message):
        if err_class >= gdal.CE_Failure:
            errors.append(str(message).strip())

    was = gdal.GetUseExceptions()
    gdal.DontUseExceptions()
    gdal.PushErrorHandler(handler)
    try:
        yield errors
    finally:
        gdal.PopErrorHandler()
        if was:
            gdal.UseExceptions()


def allow_decoder() -> None:
    """Add the decoder module to GDAL's trusted pixel-function modules, keeping any already listed.

    GDAL 3.6 reads GDAL_VRT_PYTHON_TRUSTED_MODULES (the documented GDAL_VRT_TRUSTED_MODULES is
    ignored there). Only this module is added; Python in other VRTs stays disabled.
    """
    current = gdal.GetConfigOption(TRUSTED_MODULES_KEY) or ""
    modules = [m for m in current.split(",") if m]
    if TRUSTED_MODULE not in modules:
        gdal.SetConfigOption(TRUSTED_MODULES_KEY, ",".join(modules + [TRUSTED_MODULE]))


def env_lines() -> list[str]:
    """Shell lines that let GDAL tools outside Python open sidecars (for documentation and `hsic env`)."""
    # Appended to a list the user already has, as allow_decoder does (run twice, it is listed twice: harmless).
    k = TRUSTED_MODULES_KEY
    return [f"export {k}=${{{k}:+${k},}}{TRUSTED_MODULE}"]
