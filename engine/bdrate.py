"""Bjontegaard delta rate (BD-rate): the mean rate difference of two rate-distortion curves.

Following Bjontegaard (VCEG-M33, 2001): each curve's log10(rate) is fitted as a polynomial of the
distortion measure D (cubic with 4 or more points, lower degree with fewer), both fits are integrated
over the D interval the two curves share, and the mean log-rate difference is turned back into a
percentage:

    BD-rate = 10 ** ((int_lo^hi p_test(D) dD - int_lo^hi p_anchor(D) dD) / (hi - lo)) - 1

Negative values mean the test codec needs fewer bits than the anchor for the same quality. D may be a
quality where higher is better (PSNR) or a distortion where lower is better (SAM): the integral over
D does not care which way quality goes, so one function serves both.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import InputError


def _curve(rates, dist, name: str) -> tuple[np.ndarray, np.ndarray]:
    r = np.asarray(rates, dtype=np.float64).ravel()
    d = np.asarray(dist, dtype=np.float64).ravel()
    if r.shape != d.shape:
        raise InputError(f"{name}: {r.size} rates but {d.size} distortion values")
    keep = np.isfinite(r) & np.isfinite(d) & (r > 0)  # lossless points (inf dB) have no place on a curve
    r, d = r[keep], d[keep]
    if np.unique(d).size < 2:
        raise InputError(f"{name}: a curve needs at least 2 points with distinct finite quality, got {d.size}")
    return np.log10(r), d


def _mean_log_rate(log_r: np.ndarray, d: np.ndarray, lo: float, hi: float) -> float:
    deg = min(3, np.unique(d).size - 1)
    p = np.polyint(np.polyfit(d, log_r, deg))
    return (np.polyval(p, hi) - np.polyval(p, lo)) / (hi - lo)


def bd_rate(anchor_rates, anchor_dist, test_rates, test_dist) -> float:
    """BD-rate in percent of the test curve against the anchor over their shared quality range.

    Points with non-finite values or a non-positive rate are dropped. Returns NaN when the two
    curves' quality ranges do not overlap (no honest number exists then); raises InputError when a
    curve has fewer than two usable points.
    """
    la, da = _curve(anchor_rates, anchor_dist, "anchor")
    lt, dt = _curve(test_rates, test_dist, "test")
    lo, hi = max(da.min(), dt.min()), min(da.max(), dt.max())
    if not hi > lo:
        return math.nan
    diff = _mean_log_rate(lt, dt, lo, hi) - _mean_log_rate(la, da, lo, hi)
    return float((10.0**diff - 1.0) * 100.0)


def overlap(anchor_dist, test_dist) -> tuple[float, float] | None:
    """The shared quality interval of two curves (finite values only), or None if they do not overlap."""
    a = np.asarray(anchor_dist, dtype=np.float64)
    t = np.asarray(test_dist, dtype=np.float64)
    a, t = a[np.isfinite(a)], t[np.isfinite(t)]
    if a.size == 0 or t.size == 0:
        return None
    lo, hi = max(a.min(), t.min()), min(a.max(), t.max())
    return (float(lo), float(hi)) if hi > lo else None
