"""Decoded outputs besides GeoTIFF (ENVI), and the band metadata every decoded output carries."""

from __future__ import annotations

import os
import shutil
import tempfile
import warnings
from typing import Callable

import numpy as np

from engine.errors import HSICError, HSICIOError
from engine.pipeline import check_progress
from hsi_gdal.gdal_env import GDAL_TYPES, collect_errors, gdal
from hsi_gdal.spectral import ENVI, IMAGERY, envi_header_items, imagery_items

ENVI_EXTENSIONS = (".img", ".bsq", ".dat")
WINDOW = 256  # rows and columns of a write window (one GeoTIFF block)
Progress = Callable[[float], "bool | None"]


def write_windows(ds, bands, progress: Progress | None) -> None:
    """Copy ``ds`` into the output ``bands`` window by window.

    Windows of GeoTIFF blocks (256 rows, all bands), not strips of the full width: memory stays the
    same whatever the scene size, and each .hsic tile is decoded once. A window spans as many blocks
    across as the decoder's batch needs (``batch_tiles``: 1 on a CPU, more on a GPU), at most 4.
    """
    step = WINDOW
    across = min(4, max(1, -(-getattr(ds, "batch_tiles", 1) // 4)))  # a 256 x 256 window holds 4 tiles of 128
    wins = [(y0, x0) for y0 in range(0, ds.RasterYSize, step) for x0 in range(0, ds.RasterXSize, step * across)]
    for n, (y0, x0) in enumerate(wins):
        h, w = min(step, ds.RasterYSize - y0), min(step * across, ds.RasterXSize - x0)
        win = ds.ReadAsArray(x0, y0, w, h)
        for b, plane in zip(bands, win):
            b.WriteArray(np.asarray(plane), x0, y0)
        check_progress(progress, (n + 1) / len(wins))


def copy_georeferencing(out, ds) -> None:
    """The source's geotransform, unless it has none (GDAL's default is then left unset), and its CRS,
    unless it is not WKT GDAL can read: then a warning, and the output has no CRS."""
    gt = ds.GetGeoTransform()
    if gt is not None and tuple(gt) != (0.0, 1.0, 0.0, 0.0, 0.0, 1.0):
        out.SetGeoTransform(gt)
    wkt = ds.GetProjection()
    if wkt:
        try:
            out.SetProjection(wkt)
        except RuntimeError as e:
            warnings.warn(f"the CRS of {getattr(ds, 'path', 'the source')} is not valid WKT "
                          f"({str(e).strip()}); the output has none", stacklevel=2)


def copy_band_metadata(out_band, src_band) -> None:
    """Description, metadata (default and IMAGERY domains), nodata, scale and offset of one band."""
    out_band.SetDescription(src_band.GetDescription())
    md = src_band.GetMetadata()
    out_band.SetMetadata(md)
    imagery = imagery_items(md)
    if imagery:
        out_band.SetMetadata(imagery, IMAGERY)
    if src_band.GetNoDataValue() is not None:
        out_band.SetNoDataValue(src_band.GetNoDataValue())
    if src_band.GetScale() is not None:
        out_band.SetScale(src_band.GetScale())
    if src_band.GetOffset() is not None:
        out_band.SetOffset(src_band.GetOffset())


def write_envi(dst: str, ds, progress: Progress | None) -> None:
    """ENVI BSQ raster at ``dst`` (.img/.bsq/.dat, header ``<stem>.hdr``), written atomically.

    The .hdr gets ``wavelength``, ``fwhm``, ``wavelength units`` and ``bbl`` (GDAL writes the ENVI
    metadata domain into it), band names, nodata (``data ignore value``), gain and offset; everything
    else (IMAGERY domain, per-band items) goes to GDAL's ``.aux.xml`` beside it. All files are written
    in a hidden folder next to ``dst`` and moved into place only when complete, the data file last, so
    an error or a cancel leaves nothing at ``dst``.
    """
    folder = os.path.dirname(os.path.abspath(dst))
    tmpdir = tempfile.mkdtemp(prefix="." + os.path.basename(dst) + ".", suffix=".partial", dir=folder)
    tmp = os.path.join(tmpdir, os.path.basename(dst))
    out, bands = None, []
    try:
        out = gdal.GetDriverByName("ENVI").Create(tmp, ds.RasterXSize, ds.RasterYSize, ds.RasterCount,
                                                  GDAL_TYPES[ds.dtype], ["INTERLEAVE=BSQ"])
        out.SetDescription(os.path.basename(dst))  # the .hdr's "description", not the temporary path
        copy_georeferencing(out, ds)
        out.SetMetadata(ds.GetMetadata())
        bands += [out.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
        mds = []
        for i, b in enumerate(bands):
            src_band = ds.GetRasterBand(i + 1)
            copy_band_metadata(b, src_band)
            mds.append(src_band.GetMetadata())
        header_items = envi_header_items(mds)
        if header_items:
            out.SetMetadata(header_items, ENVI)
        write_windows(ds, bands, progress)
        bands.clear()
        with collect_errors() as errors:
            out.FlushCache()
            out = None  # closing writes the .hdr and .aux.xml
        if errors:
            raise HSICIOError(f"{dst}: cannot write ENVI ({errors[0]})")
        data_name = os.path.basename(dst)
        for name in sorted(os.listdir(tmpdir), key=lambda n: n == data_name):  # data file last
            os.replace(os.path.join(tmpdir, name), os.path.join(folder, name))
    except BaseException as e:
        bands.clear()  # band handles before the dataset, so the files are closed before removal
        with collect_errors():  # the error being raised says it all: no second report while closing
            out = None
        if isinstance(e, RuntimeError) and not isinstance(e, HSICError):
            raise HSICIOError(f"{dst}: cannot write ENVI ({str(e).strip()})") from e
        raise
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
