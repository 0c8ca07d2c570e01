"""Validity masks, scene normalisation and gap filling (Numba kernels).

Learned codecs see spectra in roughly [0, 1]. The normalisation is one offset and scale for the whole
scene (the valid range over all bands), stored per band in the container: a global affine map keeps the
shape of every spectrum, which is what a spectral model learns, whatever the sensor's units.
No-data samples (the nodata value or NaN) are filled by linear interpolation along each pixel's spectrum
before coding so that the networks see smooth spectra; the mask itself is stored losslessly.
"""

from __future__ import annotations

import numba
import numpy as np


def valid_mask(cube: np.ndarray, nodata: float | None) -> np.ndarray:
    """True where a sample is data: not NaN and not the nodata value."""
    valid = np.ones(cube.shape, dtype=bool) if cube.dtype.kind in "iub" else ~np.isnan(cube)
    if nodata is not None and not np.isnan(nodata):
        valid &= cube != nodata
    return valid


@numba.njit(cache=True)
def _valid_range(cube, valid):
    lo = np.inf
    hi = -np.inf
    b, r, c = cube.shape
    for k in range(b):
        for i in range(r):
            for j in range(c):
                if valid[k, i, j]:
                    v = cube[k, i, j]
                    if v < lo:
                        lo = v
                    if v > hi:
                        hi = v
    return lo, hi


def valid_range(cube: np.ndarray, valid: np.ndarray) -> tuple[float, float]:
    """(min, max) of the valid samples; (inf, -inf) when there are none."""
    lo, hi = _valid_range(np.asarray(cube, dtype=np.float64), valid)
    return float(lo), float(hi)


def normalisation(lo: float, hi: float, bands: int) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-band (offset, scale) mapping the scene's valid range [lo, hi] to [0, 1]."""
    if not np.isfinite(lo) or not np.isfinite(hi):  # an all-nodata scene
        lo, hi = 0.0, 1.0
    scale = hi - lo if hi > lo else 1.0
    return (float(lo),) * bands, (float(scale),) * bands


@numba.njit(cache=True, nogil=True)
def _scaled(raw, offset, scale, out):
    for b in range(raw.shape[0]):
        o = offset[b]
        s = scale[b]
        for i in range(raw.shape[1]):
            for j in range(raw.shape[2]):
                out[b, i, j] = np.float32((np.float64(raw[b, i, j]) - o) / s)


def scaled(raw: np.ndarray, offset: np.ndarray, scale: np.ndarray) -> np.ndarray:
    """float32 (raw - offset[b]) / scale[b] of a (bands, h, w) array, each sample computed in float64 and
    rounded once: the same values as numpy's float64 expression cast to float32, without its float64 copies."""
    raw = native(raw)
    out = np.empty(raw.shape, np.float32)
    _scaled(raw, np.ascontiguousarray(offset, dtype=np.float64), np.ascontiguousarray(scale, dtype=np.float64), out)
    return out


def native(a: np.ndarray) -> np.ndarray:
    """``a`` in the machine's byte order (Numba kernels take no other; GDAL reads give it already)."""
    a = np.asarray(a)
    return a if a.dtype.isnative else a.astype(a.dtype.newbyteorder("="))


@numba.njit(cache=True)
def _fill_invalid(x, valid):
    b, r, c = x.shape
    for i in range(r):
        for j in range(c):
            prev = -1
            for k in range(b + 1):
                if k < b and not valid[k, i, j]:
                    continue
                # k is valid (or one past the end): fill the gap (prev, k)
                if k - prev > 1:
                    for g in range(prev + 1, k):
                        if prev < 0 and k >= b:
                            x[g, i, j] = 0.0
                        elif prev < 0:
                            x[g, i, j] = x[k, i, j]
                        elif k >= b:
                            x[g, i, j] = x[prev, i, j]
                        else:
                            t = (g - prev) / (k - prev)
                            x[g, i, j] = (1.0 - t) * x[prev, i, j] + t * x[k, i, j]
                prev = k


def fill_invalid(x: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """Fill invalid samples of a float (bands, rows, cols) array in place, interpolating along each spectrum."""
    if not valid.all():
        _fill_invalid(x, valid)
    return x
