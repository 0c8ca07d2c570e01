"""Quality and rate metrics for hyperspectral cubes shaped (bands, rows, cols).

Every quality metric takes an optional boolean ``valid`` mask of the cube's shape (True = the
sample counts, e.g. False on nodata); ``None`` means every sample counts. Arithmetic is float64
whatever the input dtype, so integer rasters can be passed without a copy.
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .arrays import kernel_ready
from .errors import InputError

__all__ = [
    "psnr",
    "psnr_band_peak",
    "ssim",
    "sam_map",
    "sam_deg",
    "max_abs_error",
    "bpppc",
    "compression_ratio",
]

# --------------------------------------------------------------------------- input checks


def _prepare(ref, rec, valid) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    ref, rec = np.asarray(ref), np.asarray(rec)
    if ref.ndim != 3:
        raise InputError(f"arrays must be 3-D (bands, rows, cols), got shape {ref.shape}")
    if rec.shape != ref.shape:
        raise InputError(f"shapes differ: reference {ref.shape} vs reconstruction {rec.shape}")
    if valid is None:
        valid = np.ones(ref.shape, dtype=np.bool_)
    else:
        valid = np.asarray(valid)
        if valid.dtype != np.bool_:
            raise InputError(f"valid must be a boolean mask, got dtype {valid.dtype}")
        if valid.shape != ref.shape:
            raise InputError(f"valid mask shape {valid.shape} differs from data shape {ref.shape}")
    return kernel_ready(ref, "ref"), kernel_ready(rec, "rec"), valid


def _check_range(data_range: float | None) -> float | None:
    if data_range is not None and not (np.isfinite(data_range) and data_range > 0):
        raise InputError(f"data_range must be a positive finite number, got {data_range!r}")
    return data_range


def _default_range(ref: np.ndarray, valid: np.ndarray) -> float:
    lo, hi, n = _valid_minmax(ref, valid)
    if n == 0:
        raise InputError("no valid samples")
    if not hi > lo:
        raise InputError(f"reference is constant ({lo!r}) over valid samples; pass data_range")
    return hi - lo


# --------------------------------------------------------------------------- numba kernels


@numba.njit(cache=True)
def _valid_minmax(ref, valid):
    lo, hi, n = np.inf, -np.inf, 0
    for b in range(ref.shape[0]):
        for y in range(ref.shape[1]):
            for x in range(ref.shape[2]):
                if valid[b, y, x]:
                    v = np.float64(ref[b, y, x])
                    lo, hi, n = min(lo, v), max(hi, v), n + 1
    return lo, hi, n


@numba.njit(cache=True)
def _band_stats(ref, rec, valid):
    """Per band: sum of squared errors, valid count, max of valid reference, max |error|."""
    nb = ref.shape[0]
    sse, cnt = np.zeros(nb), np.zeros(nb, np.int64)
    peak, mae = np.full(nb, -np.inf), np.zeros(nb)
    for b in range(nb):
        for y in range(ref.shape[1]):
            for x in range(ref.shape[2]):
                if valid[b, y, x]:
                    r = np.float64(ref[b, y, x])
                    d = np.float64(rec[b, y, x]) - r
                    sse[b] += d * d
                    cnt[b] += 1
                    peak[b] = max(peak[b], r)
                    mae[b] = max(mae[b], abs(d))
    return sse, cnt, peak, mae


@numba.njit(cache=True)
def _sam_kernel(ref, rec, valid):
    _, rows, cols = ref.shape
    dot, nr, nc = np.zeros((rows, cols)), np.zeros((rows, cols)), np.zeros((rows, cols))
    for b in range(ref.shape[0]):  # band-outer keeps memory access contiguous
        for y in range(rows):
            for x in range(cols):
                if valid[b, y, x]:
                    r, c = np.float64(ref[b, y, x]), np.float64(rec[b, y, x])
                    dot[y, x] += r * c
                    nr[y, x] += r * r
                    nc[y, x] += c * c
    out = np.full((rows, cols), np.nan)
    for y in range(rows):
        for x in range(cols):
            if nr[y, x] > 0.0 and nc[y, x] > 0.0:
                cos = min(1.0, max(-1.0, dot[y, x] / math.sqrt(nr[y, x] * nc[y, x])))
                out[y, x] = math.degrees(math.acos(cos))
    return out


@numba.njit(cache=True)
def _filter_valid(img, wy, wx):
    """Separable 'valid' (no padding) correlation of a 2-D float64 image."""
    rows, cols = img.shape
    tmp = np.zeros((rows, cols - wx.size + 1))
    for y in range(rows):
        for x in range(tmp.shape[1]):
            s = 0.0
            for k in range(wx.size):
                s += wx[k] * img[y, x + k]
            tmp[y, x] = s
    out = np.zeros((rows - wy.size + 1, tmp.shape[1]))
    for y in range(out.shape[0]):
        for k in range(wy.size):
            w = wy[k]
            for x in range(out.shape[1]):
                out[y, x] += w * tmp[y + k, x]
    return out


@numba.njit(cache=True)
def _ssim_band(ref, rec, valid, wy, wx, c1, c2):
    rows, cols = ref.shape
    x = np.empty((rows, cols))
    y = np.empty((rows, cols))
    for i in range(rows):
        for j in range(cols):
            x[i, j] = ref[i, j]
            y[i, j] = rec[i, j] if valid[i, j] else ref[i, j]
    mx, my = _filter_valid(x, wy, wx), _filter_valid(y, wy, wx)
    sxx, syy, sxy = _filter_valid(x * x, wy, wx), _filter_valid(y * y, wy, wx), _filter_valid(x * y, wy, wx)
    total = 0.0
    for i in range(mx.shape[0]):
        for j in range(mx.shape[1]):
            a, b = mx[i, j], my[i, j]
            vx, vy, cxy = sxx[i, j] - a * a, syy[i, j] - b * b, sxy[i, j] - a * b
            total += ((2 * a * b + c1) * (2 * cxy + c2)) / ((a * a + b * b + c1) * (vx + vy + c2))
    return total / mx.size


# --------------------------------------------------------------------------- public API


def psnr(ref: np.ndarray, rec: np.ndarray, data_range: float | None = None,
         valid: np.ndarray | None = None) -> float:
    """Global PSNR in dB over valid samples; peak = ``data_range``, default max - min of valid ``ref``.

    Returns ``inf`` when the valid samples are identical.
    """
    ref, rec, valid = _prepare(ref, rec, valid)
    data_range = _check_range(data_range)
    sse, cnt, _, _ = _band_stats(ref, rec, valid)
    n = int(cnt.sum())
    if n == 0:
        raise InputError("no valid samples")
    mse = float(sse.sum()) / n
    if mse == 0.0:
        return math.inf
    if data_range is None:
        data_range = _default_range(ref, valid)
    return 10.0 * math.log10(data_range**2 / mse)


def psnr_band_peak(ref: np.ndarray, rec: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean over bands of PSNR_b = 10 log10(max_b^2 / MSE_b), max_b = band max of valid ``ref``.

    As in MDIM-DRF (eq. 6). Bands with no valid sample, bands reconstructed perfectly
    (MSE_b = 0, infinite PSNR_b) and bands whose peak is not positive (PSNR_b undefined: dark or
    all-zero water-absorption bands) are left out of the mean; returns ``inf`` if every band with
    valid samples is perfect.
    """
    ref, rec, valid = _prepare(ref, rec, valid)
    sse, cnt, peak, _ = _band_stats(ref, rec, valid)
    if not cnt.any():
        raise InputError("no valid samples")
    use = (cnt > 0) & (sse > 0) & (peak > 0)
    if not use.any():
        return math.inf
    mse = sse[use] / cnt[use]
    with np.errstate(divide="ignore"):
        return float(np.mean(10.0 * np.log10(peak[use] ** 2 / mse)))


def psnr_per_band(ref: np.ndarray, rec: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """PSNR_b = 10 log10(max_b^2 / MSE_b) of every band, the terms :func:`psnr_band_peak` averages.

    ``inf`` for a band reconstructed perfectly; NaN for a band with no valid sample or no positive peak.
    """
    ref, rec, valid = _prepare(ref, rec, valid)
    sse, cnt, peak, _ = _band_stats(ref, rec, valid)
    out = np.full(cnt.shape, np.nan)
    use = (cnt > 0) & (peak > 0)
    with np.errstate(divide="ignore"):
        out[use] = 10.0 * np.log10(peak[use] ** 2 / (sse[use] / cnt[use]))
    return out


def ssim(ref: np.ndarray, rec: np.ndarray, data_range: float | None = None,
         valid: np.ndarray | None = None) -> float:
    """Mean over bands of SSIM (Wang et al. 2004): 11x11 Gaussian window, sigma 1.5, K1=0.01, K2=0.03.

    ``L`` = ``data_range``, default max - min of valid ``ref`` samples. The SSIM map covers only
    window positions fully inside the image (no padding); a dimension smaller than 11 px shrinks
    the window to the largest odd size that fits. Invalid samples of ``rec`` are replaced by the
    reference value before filtering (so they count as perfect); bands with no valid sample are
    skipped.
    """
    ref, rec, valid = _prepare(ref, rec, valid)
    data_range = _check_range(data_range)
    if not valid.any():
        raise InputError("no valid samples")
    if data_range is None:
        data_range = _default_range(ref, valid)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    _, rows, cols = ref.shape
    wy, wx = _gaussian(rows), _gaussian(cols)
    vals = [
        _ssim_band(ref[b], rec[b], valid[b], wy, wx, c1, c2)
        for b in range(ref.shape[0])
        if valid[b].any()
    ]
    return float(np.mean(vals))


def _gaussian(n: int, size: int = 11, sigma: float = 1.5) -> np.ndarray:
    """Normalised 1-D Gaussian of ``size`` taps, shrunk to the largest odd size <= ``n``."""
    size = min(size, n if n % 2 else n - 1)
    t = np.arange(size) - (size - 1) / 2
    g = np.exp(-(t**2) / (2 * sigma**2))
    return g / g.sum()


def sam_map(ref: np.ndarray, rec: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """Per-pixel spectral angle in degrees (rows, cols), over the bands valid at each pixel.

    NaN where either spectrum has zero norm over its valid bands (or no band is valid).
    """
    ref, rec, valid = _prepare(ref, rec, valid)
    return _sam_kernel(ref, rec, valid)


def sam_deg(ref: np.ndarray, rec: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Mean spectral angle in degrees: the NaN-mean of :func:`sam_map`; NaN if every pixel is skipped."""
    m = sam_map(ref, rec, valid)
    keep = ~np.isnan(m)
    return float(m[keep].mean()) if keep.any() else math.nan


def max_abs_error(ref: np.ndarray, rec: np.ndarray, valid: np.ndarray | None = None) -> float:
    """Largest |rec - ref| over valid samples."""
    ref, rec, valid = _prepare(ref, rec, valid)
    _, cnt, _, mae = _band_stats(ref, rec, valid)
    if not cnt.any():
        raise InputError("no valid samples")
    return float(mae.max())


def _positive(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
        raise InputError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def bpppc(n_bytes: int, rows: int, cols: int, bands: int) -> float:
    """Bits per pixel per component: ``n_bytes * 8 / (rows * cols * bands)``."""
    n = _positive("rows", rows) * _positive("cols", cols) * _positive("bands", bands)
    return _positive("n_bytes", n_bytes) * 8 / n


def compression_ratio(n_bytes: int, rows: int, cols: int, bands: int, dtype: object) -> float:
    """Raw size in the source's own storage type (``dtype``) divided by ``n_bytes``."""
    n = _positive("rows", rows) * _positive("cols", cols) * _positive("bands", bands)
    try:
        itemsize = np.dtype(dtype).itemsize
    except TypeError as exc:
        raise InputError(f"dtype is not a numpy dtype: {dtype!r}") from exc
    return itemsize * n / _positive("n_bytes", n_bytes)
