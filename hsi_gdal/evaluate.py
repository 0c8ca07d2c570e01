"""Quality and rate of a candidate (a .hsic file or any raster) against a reference raster."""

from __future__ import annotations

import os

import numpy as np

from engine import metrics
from engine.errors import InputError
from engine.normalise import valid_mask
from engine.pipeline import DEFAULT_TILE, check_progress
from hsi_gdal.dataset import Open


def _read(ds, progress, start: float, end: float) -> np.ndarray:
    """The whole raster, read in strips of tile height so that progress and cancellation come per tile row."""
    rows = ds.RasterYSize
    out = np.empty((ds.RasterCount, rows, ds.RasterXSize), dtype=ds.dtype)
    for y0 in range(0, rows, DEFAULT_TILE):
        h = min(DEFAULT_TILE, rows - y0)
        out[:, y0:y0 + h] = ds.ReadAsArray(0, y0, ds.RasterXSize, h).reshape(ds.RasterCount, h, -1)
        check_progress(progress, start + (end - start) * (y0 + h) / rows)
    return out


def evaluate(reference, candidate, device: str = "auto", progress=None, maps: bool = False) -> dict:
    """PSNR (data-range peak and per-band peak), SSIM, mean SAM, max error, true bpppc and ratio.

    Samples that are nodata (or NaN) in the reference are left out of every metric. The rate counts
    the candidate file's size on disk, header included. ``progress(fraction)`` is called per tile row
    while reading; returning False cancels (CancelledError). ``maps=True`` adds the per-band PSNR
    (``psnr_per_band_db``, a list) and the per-pixel spectral angle (``sam_map``, a (rows, cols) array).
    """
    ref_ds, cand_ds = Open(reference), Open(candidate, device=device)
    shape_ref = (ref_ds.RasterCount, ref_ds.RasterYSize, ref_ds.RasterXSize)
    shape_cand = (cand_ds.RasterCount, cand_ds.RasterYSize, cand_ds.RasterXSize)
    if shape_ref != shape_cand:
        raise InputError(f"shapes differ: reference {shape_ref} vs candidate {shape_cand} (bands, rows, cols)")
    ref = _read(ref_ds, progress, 0.0, 0.45)
    cand = _read(cand_ds, progress, 0.45, 0.9)
    nodata = ref_ds.GetRasterBand(1).GetNoDataValue()
    n_bytes = os.path.getsize(os.fspath(candidate))
    result = {
        "reference": os.fspath(reference),
        "candidate": os.fspath(candidate),
        "shape": list(shape_ref),
        **quality_metrics(ref, cand, nodata),
        **rate_metrics(n_bytes, shape_ref, ref_ds.dtype),
    }
    if maps:
        valid = valid_mask(ref, nodata)
        ref64, cand64 = ref.astype(np.float64), cand.astype(np.float64)
        result["psnr_per_band_db"] = metrics.psnr_per_band(ref64, cand64, valid=valid).tolist()
        result["sam_map"] = metrics.sam_map(ref64, cand64, valid=valid)
    return result


def quality_metrics(ref: np.ndarray, cand: np.ndarray, nodata: float | None) -> dict:
    """PSNR (two kinds), SSIM, mean SAM and max error of ``cand`` against ``ref`` (bands, rows, cols).

    Samples that are ``nodata`` (or NaN) in the reference are left out of every metric.
    """
    valid = valid_mask(ref, nodata)
    ref64, cand64 = ref.astype(np.float64), cand.astype(np.float64)
    return {
        "psnr_db": metrics.psnr(ref64, cand64, valid=valid),
        "psnr_band_peak_db": metrics.psnr_band_peak(ref64, cand64, valid=valid),
        "ssim": metrics.ssim(ref64, cand64, valid=valid),
        "sam_deg": metrics.sam_deg(ref64, cand64, valid=valid),
        "max_abs_error": metrics.max_abs_error(ref64, cand64, valid=valid),
    }


def rate_metrics(n_bytes: int, shape, dtype) -> dict:
    """Bytes, true bpppc and compression ratio (against ``dtype``) of ``n_bytes`` for a (bands, rows, cols) cube."""
    bands, rows, cols = shape
    return {
        "bytes": n_bytes,
        "bpppc": metrics.bpppc(n_bytes, rows, cols, bands),
        "compression_ratio": metrics.compression_ratio(n_bytes, rows, cols, bands, dtype),
    }
