"""Contiguous partitions of the spectrum into groups of highly correlated bands (``band-cluster``).

Mijares i Verdu et al. code each interval of highly correlated AVIRIS bands with its own
small model; their intervals were picked by hand. Here they are found from training data:

* :func:`band_correlation`: Pearson correlation between the bands of a scene over its valid pixels;
* :func:`find_partition`: the split of bands 0..B into exactly ``groups`` contiguous intervals that
  minimises the within-interval dissimilarity sum_{a,b in I} (1 - r_ab) / |I| (the k-means objective
  with 1 - r as the distance), under minimum / maximum interval sizes, solved exactly by dynamic
  programming over the split points;
* :func:`rescale_partition`: the fallback for a band count no training scene had.

A partition is a list of ``groups + 1`` boundaries ``[0, b1, ..., B]``; interval g is bands
``b_g .. b_{g+1} - 1``. The number of intervals is fixed (one model per interval position along the
spectrum), so every sensor's partition maps onto the same models in spectral order.
"""

from __future__ import annotations

import math

import numpy as np

from engine.errors import InputError


def band_correlation(x: np.ndarray, valid: np.ndarray | None = None) -> np.ndarray:
    """(B, B) Pearson correlation of the bands of a (B, rows, cols) cube over pixels valid in every band.

    Constant bands (e.g. all-nodata bands filled with one value) get correlation 0 with the others and
    1 with themselves.
    """
    bands = x.shape[0]
    flat = x.reshape(bands, -1).astype(np.float64)
    if valid is not None:
        keep = valid.reshape(bands, -1).all(axis=0)
        if keep.sum() >= 2:
            flat = flat[:, keep]
    flat = flat - flat.mean(axis=1, keepdims=True)
    norm = np.sqrt((flat ** 2).sum(axis=1))
    live = norm > 1e-12 * max(1.0, float(norm.max(initial=0.0)))
    r = np.zeros((bands, bands))
    z = flat[live] / norm[live, None]
    r[np.ix_(live, live)] = z @ z.T
    np.fill_diagonal(r, 1.0)
    return np.clip(r, -1.0, 1.0)


def size_limits(bands: int, groups: int, min_frac: float, max_frac: float) -> tuple[int, int]:
    """Smallest and largest interval for ``bands`` bands, relaxed so that a partition always exists."""
    lo = max(1, int(bands * min_frac))
    hi = max(lo, math.ceil(bands * max_frac))
    lo = min(lo, bands // groups)
    hi = max(hi, -(-bands // groups))
    return lo, hi


def find_partition(corr: np.ndarray, groups: int, min_size: int = 1, max_size: int | None = None) -> list[int]:
    """Boundaries of the best split of the bands of ``corr`` into ``groups`` contiguous intervals.

    Minimises sum over intervals I of sum_{a,b in I} (1 - r_ab) / |I|; every interval holds between
    ``min_size`` and ``max_size`` bands. InputError when no partition fits the limits.
    """
    corr = np.asarray(corr, dtype=np.float64)
    bands = corr.shape[0]
    if corr.shape != (bands, bands) or not np.isfinite(corr).all():
        raise InputError("band correlation must be a finite square matrix")
    max_size = bands if max_size is None else max_size
    if groups < 1 or min_size < 1 or groups * min_size > bands or groups * max_size < bands:
        raise InputError(f"cannot split {bands} bands into {groups} intervals of {min_size} to {max_size} bands")
    d = 1.0 - corr
    # 2-D prefix sums: the dissimilarity inside any interval [i, j) in O(1).
    p = np.zeros((bands + 1, bands + 1))
    p[1:, 1:] = d.cumsum(0).cumsum(1)

    def cost(i: np.ndarray, j: int) -> np.ndarray:
        return (p[j, j] - p[i, j] - p[j, i] + p[i, i]) / np.maximum(j - i, 1)

    inf = np.inf
    best = np.full((groups + 1, bands + 1), inf)
    arg = np.zeros((groups + 1, bands + 1), dtype=np.int64)
    best[0, 0] = 0.0
    for g in range(1, groups + 1):
        for j in range(g * min_size, bands + 1):
            i = np.arange(max(0, j - max_size), j - min_size + 1)
            if i.size == 0:
                continue
            total = best[g - 1, i] + cost(i, j)
            k = int(np.argmin(total))
            best[g, j], arg[g, j] = total[k], i[k]
    if not np.isfinite(best[groups, bands]):
        raise InputError(f"no partition of {bands} bands into {groups} intervals fits the size limits")
    bounds = [bands]
    for g in range(groups, 0, -1):
        bounds.append(int(arg[g, bounds[-1]]))
    return bounds[::-1]


def rescale_partition(bounds: list[int], bands: int) -> list[int]:
    """A partition for ``bands`` bands from one found for another band count: every boundary keeps its
    relative position along the band axis (rounded). Intervals may become empty when ``bands`` is smaller
    than the number of intervals (their model then codes nothing)."""
    src = bounds[-1]
    out = [int(round(b * bands / src)) for b in bounds]
    out[0], out[-1] = 0, bands
    for k in range(1, len(out)):
        out[k] = max(out[k], out[k - 1])
    return out


def partition_for(partitions: dict[str, list[int]], bands: int) -> list[int]:
    """The stored partition for ``bands`` bands, or the fallback: the stored partition of the nearest
    band count (the larger one on ties), rescaled with :func:`rescale_partition`."""
    if not partitions:
        raise InputError("no band partition stored with these weights")
    if str(bands) in partitions:
        return list(partitions[str(bands)])
    nearest = min(partitions, key=lambda k: (abs(int(k) - bands), -int(k)))
    return rescale_partition(list(partitions[nearest]), bands)
