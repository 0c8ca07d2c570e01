"""Per-band statistics and histograms of a scene, declared in the .hsic sidecar (never in the .hsic).

GIS software asks for them as soon as a layer opens (QGIS's contrast stretch, ``gdalinfo -stats``):
declared in the sidecar, they are answered without decoding the scene, and GDAL has nothing to write
back into the sidecar. They describe the source samples (no-data left out), read tile by tile; the
decoded samples differ from them by the codec's error.

The histogram has the layout of GDAL's default one (GDALRasterBand::GetDefaultHistogram): ``BUCKETS`` buckets
from ``min - h`` to ``max + h``, ``h`` half a bucket, so each extreme lies at a bucket's centre.
"""

from __future__ import annotations

from typing import Callable, Iterable

import numpy as np

from engine.normalise import valid_mask

BUCKETS = 64  # GDAL uses 256; 64 keep the sidecar and style small

ReadWindow = Callable[[int, int, int, int], np.ndarray]


def histogram_range(lo: float, hi: float, buckets: int = BUCKETS) -> tuple[float, float]:
    """(HistMin, HistMax) of GDAL's default histogram for a band whose values span [lo, hi]."""
    half = (hi - lo) / (2 * (buckets - 1)) if hi > lo else 0.5
    return lo - half, hi + half


def scene_statistics(bands: int, nodata: float | None, read_window: ReadWindow,
                     windows: Iterable[tuple[int, int, int, int]]) -> tuple[dict, ...]:
    """One dict per band: min, max, mean, std (population, as GDAL), valid_percent and a histogram
    ``{"min", "max", "counts"}``; a band with no valid sample gets an empty dict."""
    windows = list(windows)
    n = np.zeros(bands)
    total = 0
    lo, hi = np.full(bands, np.inf), np.full(bands, -np.inf)
    shift = None
    s1, s2 = np.zeros(bands), np.zeros(bands)
    for win in windows:  # first pass: extremes and shifted moments (stable for large means)
        raw = read_window(*win)
        valid = valid_mask(raw, nodata)
        x = np.where(valid, raw.astype(np.float64), np.nan).reshape(bands, -1)
        total += x.shape[1]
        cnt = valid.reshape(bands, -1).sum(axis=1)
        if not cnt.any():
            continue
        if shift is None:
            shift = np.nan_to_num(np.nanmean(np.where(cnt[:, None] > 0, x, 0), axis=1))
        d = x - shift[:, None]
        n += cnt
        s1 += np.nansum(d, axis=1)
        s2 += np.nansum(d * d, axis=1)
        has = cnt > 0
        lo[has] = np.minimum(lo[has], np.nanmin(x[has], axis=1))
        hi[has] = np.maximum(hi[has], np.nanmax(x[has], axis=1))
    edges = [histogram_range(lo[b], hi[b]) if n[b] else (0.0, 1.0) for b in range(bands)]
    counts = np.zeros((bands, BUCKETS), dtype=np.int64)
    for win in windows:  # second pass: the histogram, now that the range is known
        raw = read_window(*win)
        valid = valid_mask(raw, nodata)
        for b in range(bands):
            v = raw[b][valid[b]].astype(np.float64)
            if v.size:
                h0, h1 = edges[b]
                idx = np.clip(((v - h0) / (h1 - h0) * BUCKETS).astype(np.int64), 0, BUCKETS - 1)
                counts[b] += np.bincount(idx, minlength=BUCKETS)
    out = []
    for b in range(bands):
        if not n[b]:
            out.append({})
            continue
        m1 = s1[b] / n[b]
        var = max(s2[b] / n[b] - m1 * m1, 0.0)
        out.append({
            "min": float(lo[b]), "max": float(hi[b]),
            # 7 significant digits (float32 precision) keep the sidecar small
            "mean": float(f"{shift[b] + m1:.7g}"), "std": float(f"{np.sqrt(var):.7g}"),
            "valid_percent": float(f"{100.0 * n[b] / total:.7g}"),
            "histogram": {"min": edges[b][0], "max": edges[b][1], "counts": counts[b].tolist()},
        })
    return tuple(out)
