"""``Translate``: compress a raster to .hsic (with its sidecar), or decode a .hsic to GeoTIFF."""

from __future__ import annotations

import os
from typing import Callable

import numpy as np
from osgeo import gdal

from engine.errors import HSICError, HSICIOError, InputError
from engine.pipeline import DEFAULT_TILE, check_progress, compress_scene
from engine.registry import DEFAULT_CODEC
from hsi_gdal._gdal import GDAL_TYPES, cache_limit
from hsi_gdal.dataset import Dataset, Open
from hsi_gdal.sidecar import write_sidecar
from hsi_gdal.source import HsicSource, RasterSource

Progress = Callable[[float], "bool | None"]


def _src_path(src) -> str:
    if isinstance(src, Dataset):
        return src.path
    if isinstance(src, (str, os.PathLike)):
        return os.fspath(src)
    raise TypeError(f"source must be a path or an hsi_gdal dataset, not {type(src).__name__}")


def _check_dst(dst: str, src: str) -> None:
    folder = os.path.dirname(os.path.abspath(dst))
    if not os.path.isdir(folder):
        raise HSICIOError(f"{dst}: folder {folder} does not exist")
    if os.path.abspath(dst) == os.path.abspath(src):
        raise InputError(f"{dst}: output would overwrite the input")


def Translate(destName, srcDSOrSrcDSName, codec: str | None = None, quality: int | None = None,
              device: str = "auto", progress: Progress | None = None, tile_size: int = DEFAULT_TILE) -> Dataset:
    """Convert like ``gdal.Translate``, choosing the direction from the destination's extension.

    * ``*.hsic``: compress any GDAL raster (or .hsic) with ``codec`` at ``quality`` and write the
      sidecar ``*.hsic.vrt`` that GDAL and QGIS open as a georeferenced raster.
    * ``*.tif`` / ``*.tiff``: decode (or copy) to a DEFLATE GeoTIFF with all metadata.

    ``progress(fraction)`` is called per tile; returning False cancels (CancelledError, no output left).
    Returns the output opened with :func:`Open`.
    """
    dst = os.fspath(destName)
    src = _src_path(srcDSOrSrcDSName)
    _check_dst(dst, src)
    ext = os.path.splitext(dst)[1].lower()
    if ext == ".hsic":
        source = _open_source(src, device)
        with cache_limit():
            header = compress_scene(source.info, source.read_window, dst, codec or DEFAULT_CODEC, quality,
                                    device=device, tile_size=tile_size, progress=progress)
        write_sidecar(dst, header)
    elif ext in (".tif", ".tiff"):
        if codec is not None or quality is not None:
            raise InputError("codec and quality apply to .hsic outputs only")
        with cache_limit():
            _write_geotiff(dst, Open(src, device=device), progress)
    else:
        raise InputError(f"{dst}: unknown output type {ext or '(none)'}; use .hsic to compress or .tif to decode")
    return Open(dst, device=device)


def _open_source(path: str, device: str):
    """A window source for the compressor: a GDAL raster, or a .hsic decoded on the fly (re-coding)."""
    return HsicSource(path, device) if path.lower().endswith(".hsic") else RasterSource(path)


def _write_geotiff(dst: str, ds: Dataset, progress: Progress | None) -> None:
    """GeoTIFF written under a temporary name and renamed: never a half-written file at ``dst``."""
    tmp = dst + ".partial"
    drv = gdal.GetDriverByName("GTiff")
    opts = ["COMPRESS=DEFLATE", "TILED=YES", "BLOCKXSIZE=256", "BLOCKYSIZE=256", "INTERLEAVE=BAND", "BIGTIFF=IF_SAFER",
            f"PREDICTOR={3 if ds.dtype.startswith('float') else 2}"]
    bands: list = []
    try:
        out = drv.Create(tmp, ds.RasterXSize, ds.RasterYSize, ds.RasterCount, GDAL_TYPES[ds.dtype], opts)
        out.SetGeoTransform(ds.GetGeoTransform())
        if ds.GetProjection():
            out.SetProjection(ds.GetProjection())
        out.SetMetadata(ds.GetMetadata())
        bands += [out.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
        for i, b in enumerate(bands):
            src_band = ds.GetRasterBand(i + 1)
            b.SetDescription(src_band.GetDescription())
            b.SetMetadata(src_band.GetMetadata())
            if src_band.GetNoDataValue() is not None:
                b.SetNoDataValue(src_band.GetNoDataValue())
            if src_band.GetScale() is not None:
                b.SetScale(src_band.GetScale())
            if src_band.GetOffset() is not None:
                b.SetOffset(src_band.GetOffset())
        # Windows of one GeoTIFF block (256 x 256, all bands), not strips of the full width: memory stays
        # the same whatever the scene size, and each .hsic tile is decoded once.
        step = 256
        wins = [(y0, x0) for y0 in range(0, ds.RasterYSize, step) for x0 in range(0, ds.RasterXSize, step)]
        for n, (y0, x0) in enumerate(wins):
            h, w = min(step, ds.RasterYSize - y0), min(step, ds.RasterXSize - x0)
            win = ds.ReadAsArray(x0, y0, w, h)
            for b, plane in zip(bands, win):
                b.WriteArray(np.asarray(plane), x0, y0)
            check_progress(progress, (n + 1) / len(wins))
        bands.clear()
        out.FlushCache()
        out = None
        os.replace(tmp, dst)
    except BaseException as e:
        bands.clear()  # drop GDAL band handles before the dataset, so the file is closed before removal
        out = None
        if os.path.exists(tmp):
            os.remove(tmp)
        if isinstance(e, RuntimeError) and not isinstance(e, HSICError):
            raise HSICIOError(f"{dst}: cannot write GeoTIFF ({str(e).strip()})") from e
        raise
