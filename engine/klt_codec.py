"""The KLT codec's core: the scene's KLT as spectral stage, quantised components coded per tile.

    x (bands, h, w) --(x - mean) projected on the k basis vectors--> y (k, h, w)
      --uniform step, dead zone--> q (ints) --context model + rANS--> tile bytes
    decode: q --sign(q)(|q| - d) step--> y_hat --mean + basis y_hat--> x_hat

One quantiser step for every component: the basis is (nearly) orthonormal, so component MSE is spectral MSE.
The dead zone (``ROUNDING`` < 0.5) and the per-plane reconstruction offsets d (the centroids the encoder
measured) are the rate-distortion-optimised quantiser; k is the number of components whose standard deviation
is at least ``K_STD_RATIO`` steps (weaker ones would quantise to almost nothing but still cost a basis column).
Tiles are independent (random access); decoding needs numpy and Numba only (no torch).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable, Iterator

import numba
import numpy as np

from engine import context_models as cm
from engine.entropy.laplace import N_SCALES, cost_table, load_tables, symbol_lut
from engine.errors import FormatError, InputError
from engine.format.klt import PLANE_HEAD, TILE_HEAD
from engine.klt import SpectralStage, fit_klt, make_stage

ROUNDING = 0.5 - 0.10  # q = sign(y) floor(|y| / step + ROUNDING); tuned on train/ (scripts/klt_rd.py)
K_STD_RATIO = 0.4
DEFAULT_MODEL = "learned"


@functools.lru_cache(maxsize=None)
def tables() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(cdf, nsym, bits, lut): the Laplace tables, their cost in bits and the decoder's symbol lookup."""
    cdf, nsym = load_tables()
    return cdf, nsym, cost_table(cdf, nsym), symbol_lut(cdf, nsym)


@functools.lru_cache(maxsize=None)
def learned_weights() -> cm.LearnedWeights:
    return cm.load_learned()


def _model_weights(model: int) -> cm.LearnedWeights:
    return learned_weights() if model == cm.LEARNED else cm.dummy_learned()


def model_id(name: str) -> int:
    if name not in cm.MODEL_NAMES:
        raise InputError(f"unknown context model {name!r}; one of {sorted(cm.MODEL_NAMES)}")
    return cm.MODEL_NAMES[name]


# --------------------------------------------------------------------------- stage


def choose_k(var: np.ndarray, step: float, ratio: float | None = None) -> int:
    """Components whose standard deviation is at least ``ratio`` (default K_STD_RATIO) steps (at least 1)."""
    ratio = K_STD_RATIO if ratio is None else ratio
    return max(1, int(np.sum(np.sqrt(np.maximum(var, 0.0)) >= ratio * step)))


def fit_stage(tiles: Iterable[tuple[np.ndarray, np.ndarray | None]], bands: int, step: float,
              k: int | None = None) -> SpectralStage:
    """The quantised spectral stage of a scene from its (tile, valid) pairs, in one pass."""
    mean, basis, var, used = fit_klt(tiles, bands)
    return make_stage(mean, basis, var, used, step, choose_k(var, step) if k is None else k)


# --------------------------------------------------------------------------- components


def project(x: np.ndarray, stage: SpectralStage) -> np.ndarray:
    """Least-squares components (k, h, w) of x (bands, h, w) for the stage's dequantised basis."""
    b = stage.basis
    bands, h, w = x.shape
    xc = x.reshape(bands, -1).astype(np.float64) - stage.mean[:, None]
    y = np.linalg.pinv(b) @ xc  # pinv: a column quantised to zero gets zero components
    return y.reshape(stage.k, h, w)


def quantise(y: np.ndarray, step: float, rounding: float = ROUNDING) -> np.ndarray:
    a = np.floor(np.abs(y) / step + rounding)
    if a.size and a.max() >= 2**30:
        raise InputError(f"quantiser step {step!r} is too small for these data")
    return (np.sign(y) * a).astype(np.int64)


def centroid_offsets(y: np.ndarray, q: np.ndarray, step: float) -> tuple[int, int]:
    """(d1, d2) in 1/512 step: the mean of |q| - |y|/step over |q| = 1 and over |q| >= 2."""
    a = np.abs(q)
    t = a - np.abs(y) / step
    out = []
    for sel in (a == 1, a >= 2):
        d = float(t[sel].mean()) if sel.any() else 0.0
        out.append(int(np.clip(round(d * 512), 0, 255)))
    return out[0], out[1]


def dequantise(q: np.ndarray, d1: np.ndarray, d2: np.ndarray, step: float) -> np.ndarray:
    a = np.abs(q).astype(np.float64)
    d = np.where(a == 1, d1[:, None, None], d2[:, None, None]) / 512.0
    return np.where(a > 0, np.sign(q) * (a - d), 0.0) * step


# --------------------------------------------------------------------------- tiles


def encode_tile(x: np.ndarray, stage: SpectralStage, model: str = DEFAULT_MODEL,
                rounding: float = ROUNDING) -> bytes:
    """Bytes of one tile x (bands, h, w) float (normalised, nodata filled)."""
    x = np.asarray(x)
    if x.ndim != 3 or x.shape[0] != stage.bands:
        raise InputError(f"tile must be ({stage.bands}, h, w), got shape {x.shape}")
    y = project(x, stage)
    return encode_components(y, stage, model, rounding)


def encode_components(y: np.ndarray, stage: SpectralStage, model: str = DEFAULT_MODEL,
                      rounding: float = ROUNDING) -> bytes:
    m = model_id(model)
    k, h, w = y.shape
    q = quantise(y, stage.step, rounding)
    nz = np.flatnonzero(np.abs(q).reshape(k, -1).max(axis=1) if k else [])
    kt = int(nz[-1]) + 1 if nz.size else 0
    cdf, nsym, bits, _ = tables()
    lw = _model_weights(m)
    log_std = stage.log_std.astype(np.int64)
    preds = np.zeros(max(kt, 1), np.int64)
    offsets = np.zeros(max(kt, 1), np.int64)
    table = np.arange(cm.N_BUCKETS, dtype=np.int64)  # HAND: identity, so the encoder first sees buckets
    res = np.zeros((k, h, w), np.int64)
    ctx = np.zeros((max(kt, 1), h, w), np.int64)
    mu = np.zeros((h, w), np.int64)
    args = (lw.predictors, lw.w1, lw.b1, lw.w2, np.int64(lw.b2))
    for c in range(kt):
        if m != cm.ZEROTH:
            preds[c] = cm.best_predictor(q, c, lw.predictors)
        cm.plane_contexts(m, q, res, mu, ctx[c], c, preds[c], log_std[c], table, *args)
        if m == cm.LEARNED:
            offsets[c] = cm.best_offset(res[c], ctx[c], bits, nsym, -cm.OFFSET_RANGE, cm.OFFSET_RANGE)
        elif m == cm.ZEROTH:
            offsets[c] = cm.best_offset(res[c], ctx[c], bits, nsym, 0, min(N_SCALES - 1, 127))
    if m == cm.HAND:
        table = cm.best_hand_table(res, ctx, bits, nsym, kt)
        ctx = table[ctx]  # buckets -> scale indices
    head = TILE_HEAD.pack(m, kt)
    if m == cm.HAND:
        head += table.astype(np.uint8).tobytes()
    for c in range(kt):
        d1, d2 = centroid_offsets(y[c], q[c], stage.step)
        head += PLANE_HEAD.pack(int(preds[c]), int(offsets[c]), d1, d2)
    stream = cm.encode_planes(res, ctx, offsets, kt, cdf, nsym) if kt else b""
    return head + bytes(stream)


def decode_tile(blob: bytes, stage: SpectralStage, h: int, w: int) -> np.ndarray:
    """Components (k, h, w) float32 of one tile, from its bytes and the stage."""
    blob = bytes(blob)
    if len(blob) < TILE_HEAD.size:
        raise FormatError("tile truncated")
    m, kt = TILE_HEAD.unpack_from(blob)
    if m not in cm.MODEL_NAMES.values() or kt > stage.k:
        raise FormatError(f"tile header is corrupt (model {m}, {kt} planes of {stage.k})")
    pos = TILE_HEAD.size
    table = np.arange(cm.N_BUCKETS, dtype=np.int64)
    if m == cm.HAND:
        table = np.frombuffer(blob, np.uint8, cm.N_BUCKETS, pos).astype(np.int64) if len(blob) >= pos + cm.N_BUCKETS \
            else None
        if table is None or table.max() >= N_SCALES:
            raise FormatError("tile's context table is corrupt or truncated")
        pos += cm.N_BUCKETS
    if len(blob) < pos + kt * PLANE_HEAD.size:
        raise FormatError("tile truncated")
    planes = np.array([PLANE_HEAD.unpack_from(blob, pos + c * PLANE_HEAD.size) for c in range(kt)],
                      dtype=np.int64).reshape(kt, 4)
    pos += kt * PLANE_HEAD.size
    lw = _model_weights(m)
    if kt and planes[:, 0].max() >= lw.predictors.shape[0]:
        raise FormatError("tile names a predictor this model does not have")
    cdf, nsym, _, lut = tables()
    q = np.zeros((stage.k, h, w), np.int64)
    if kt:
        q, ok = cm.decode_planes(m, np.frombuffer(blob, np.uint8, offset=pos), stage.k, kt, h, w,
                                 planes[:, 0].copy(), planes[:, 1].copy(), stage.log_std.astype(np.int64),
                                 table, lw.predictors, lw.w1, lw.b1, lw.w2, np.int64(lw.b2), cdf, nsym, lut)
        if not ok:
            raise FormatError("tile's entropy-coded stream is corrupt")
    d1 = np.zeros(stage.k)
    d2 = np.zeros(stage.k)
    d1[:kt], d2[:kt] = planes[:, 2], planes[:, 3]
    return dequantise(q, d1, d2, stage.step).astype(np.float32)


@numba.njit(cache=True, nogil=True)
def _reconstruct(mean, basis, y, out):
    # A fixed summation order (no BLAS), so every machine and thread count gives the same samples.
    nb, k = basis.shape
    n = y.shape[1]
    acc = np.empty(n)
    for b in range(nb):
        acc[:] = mean[b]
        for c in range(k):
            v = basis[b, c]
            if v != 0.0:
                for i in range(n):
                    acc[i] += v * y[c, i]
        for i in range(n):
            out[b, i] = acc[i]


def reconstruct(components: np.ndarray, stage: SpectralStage, bands=None) -> np.ndarray:
    """Normalised samples (len(bands), h, w) float32 from components (k, h, w); bands=None means all."""
    k, h, w = components.shape
    sel = np.arange(stage.bands) if bands is None else np.asarray(bands, dtype=np.int64)
    if sel.size and (sel.min() < 0 or sel.max() >= stage.bands):
        raise InputError(f"band index out of range 0..{stage.bands - 1}: {bands!r}")
    out = np.empty((sel.size, h * w), np.float32)
    _reconstruct(stage.mean[sel].copy(), np.ascontiguousarray(stage.basis[sel]),
                 np.ascontiguousarray(components.reshape(k, -1), dtype=np.float64), out)
    return out.reshape(sel.size, h, w)


# --------------------------------------------------------------------------- a whole scene


def tile_windows(rows: int, cols: int, tile: int) -> Iterator[tuple[int, int, int, int]]:
    for y0 in range(0, rows, tile):
        for x0 in range(0, cols, tile):
            yield y0, x0, min(tile, rows - y0), min(tile, cols - x0)


def encode_scene(x: np.ndarray, valid: np.ndarray | None, step: float, model: str = DEFAULT_MODEL,
                 tile: int = 128, k: int | None = None, rounding: float = ROUNDING,
                 klt=None) -> tuple[bytes, list[bytes]]:
    """(stage bytes, tile bytes in row-major tile order) of a normalised, filled cube (bands, rows, cols).

    ``klt`` (mean, basis, variances, used) from :func:`engine.klt.fit_klt` skips the fit (rate searches).
    """
    bands, rows, cols = x.shape
    wins = list(tile_windows(rows, cols, tile))
    if klt is None:
        klt = fit_klt(((x[:, a:a + hh, b:b + ww], None if valid is None else valid[:, a:a + hh, b:b + ww])
                       for a, b, hh, ww in wins), bands)
    mean, basis, var, used = klt
    stage = make_stage(mean, basis, var, used, step, choose_k(var, step) if k is None else k)
    blobs = [encode_tile(x[:, a:a + hh, b:b + ww], stage, model, rounding) for a, b, hh, ww in wins]
    return stage.to_bytes(), blobs


def decode_scene(stage_bytes: bytes, blobs: list[bytes], rows: int, cols: int, tile: int = 128) -> np.ndarray:
    stage = SpectralStage.from_bytes(stage_bytes)
    out = np.empty((stage.bands, rows, cols), np.float32)
    for blob, (a, b, hh, ww) in zip(blobs, tile_windows(rows, cols, tile)):
        out[:, a:a + hh, b:b + ww] = reconstruct(decode_tile(blob, stage, hh, ww), stage)
    return out


def scene_bytes(stage_bytes: bytes, blobs: list[bytes], header: int) -> int:
    return len(stage_bytes) + sum(len(b) for b in blobs) + header


def step_for_rate(x: np.ndarray, valid, target_bpppc: float, header: int, model: str = DEFAULT_MODEL,
                  tile: int = 128, tolerance: float = 0.03) -> tuple[float, bytes, list[bytes]]:
    """The step whose scene lands at most ``target_bpppc`` and within ``tolerance`` below it (bisection on log step).

    ``header`` is the container's bytes outside the stage and tiles, counted in the rate.
    Returns (step, stage bytes, tile bytes); the lowest-rate attempt if even the coarsest step is above target.
    """
    bands, rows, cols = x.shape
    budget = target_bpppc * bands * rows * cols / 8.0
    klt = fit_klt([(x, valid)], bands)
    lo, hi = math.log(1e-6), math.log(4.0)  # normalised data: steps above the data range code nothing
    best = None
    for _ in range(40):
        mid = 0.5 * (lo + hi)
        sb, blobs = encode_scene(x, valid, math.exp(mid), model, tile, klt=klt)
        n = scene_bytes(sb, blobs, header)
        if n <= budget:
            best = (math.exp(mid), sb, blobs)
            if n >= (1.0 - tolerance) * budget:
                break
            hi = mid
        else:
            lo = mid
    if best is None:
        sb, blobs = encode_scene(x, valid, 4.0, model, tile, klt=klt)
        best = (4.0, sb, blobs)
    return best


def step_for_psnr(x: np.ndarray, valid, min_psnr: float, model: str = DEFAULT_MODEL, tile: int = 128,
                  ) -> tuple[float, bytes, list[bytes]]:
    """The coarsest step (fewest bits) whose reconstruction has at least ``min_psnr`` dB.

    PSNR over the valid samples of the normalised cube with peak 1 (the valid data range), as
    engine/metrics.psnr measures it on the original samples before any cast to an integer type.
    """
    from engine.metrics import psnr

    bands, rows, cols = x.shape
    klt = fit_klt([(x, valid)], bands)
    lo, hi = math.log(1e-6), math.log(4.0)
    best = None
    for _ in range(30):
        mid = 0.5 * (lo + hi)
        sb, blobs = encode_scene(x, valid, math.exp(mid), model, tile, klt=klt)
        if psnr(x, decode_scene(sb, blobs, rows, cols, tile), 1.0, valid) >= min_psnr:
            best, lo = (math.exp(mid), sb, blobs), mid
        else:
            hi = mid
        if hi - lo < 0.01:
            break
    if best is None:
        raise InputError(f"no quantiser step reaches {min_psnr} dB")
    return best
