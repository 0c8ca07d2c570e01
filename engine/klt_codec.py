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


# --------------------------------------------------------------------------- rate model (rate searches)


@numba.njit(cache=True, nogil=True)
def _laplace_bits(count, sum_abs):
    """Entropy in bits of ``count`` integers drawn from the discrete Laplace law of mean |r| sum_abs / count."""
    if count == 0 or sum_abs == 0:
        return 0.0
    m = sum_abs / count
    theta = (math.sqrt(1.0 + m * m) - 1.0) / m  # E|r| = 2 theta / (1 - theta^2)
    return count * (-math.log2((1.0 - theta) / (1.0 + theta)) - m * math.log2(theta))


@numba.njit(cache=True, nogil=True)
def _model_bits(y, k, step, rounding):
    """Estimated bits of planes 0..k-1 of components y (K, h, w) quantised with ``step``.

    Each plane costs the smaller of two ideal adaptive coders: residuals from 0 or from MED(W, N, NW), each
    with a Laplace law per bucket of local activity |W - NW| + |N - NW| + |N - NE| (octaves, as the HAND
    model's). Orders of magnitude cheaper than coding, and near the coder's rate up to a factor that changes
    slowly with the step: a rate search calibrates it against a file it wrote.
    """
    h, w = y.shape[1], y.shape[2]
    q = np.zeros((h + 1, w + 2), np.int64)  # a zero row above and a zero column on each side
    total = 0.0
    for c in range(k):
        for i in range(h):
            for j in range(w):
                a = math.floor(abs(y[c, i, j]) / step + rounding)
                q[i + 1, j + 1] = -a if y[c, i, j] < 0 else a
        n = np.zeros((2, 8))
        s = np.zeros((2, 8))
        for i in range(1, h + 1):
            for j in range(1, w + 1):
                v = q[i, j]
                W = q[i, j - 1]
                N = q[i - 1, j]
                NW = q[i - 1, j - 1]
                act = abs(W - NW) + abs(N - NW) + abs(N - q[i - 1, j + 1])
                b = 0
                while act > 0 and b < 7:
                    act >>= 1
                    b += 1
                n[0, b] += 1
                s[0, b] += abs(v)
                n[1, b] += 1
                s[1, b] += abs(v - cm.med(W, N, NW))
        best = np.inf
        for p in range(2):
            bits = 0.0
            for b in range(8):
                bits += _laplace_bits(n[p, b], s[p, b])
            best = min(best, bits)
        total += best
    return total


# File bytes over the model's estimate: 0.96-1.05, median 0.98, over the train/ scenes at steps 0.0008-0.04
# (docs/benchmarks/klt_speed.md); applied so that a search's first file usually lands.
MODEL_SCALE = 0.98


class RateModel:
    """Estimated payload bits of some tiles at any quantiser step, for a rate search (never for coding).

    The tiles' components on the scene's (unquantised) basis are computed once, for as many components as
    the finest step asked needs; each estimate then quantises and costs them (:func:`_model_bits`).
    ``tiles()`` gives the normalised tiles again (one at a time) when more components are needed.
    """

    def __init__(self, tiles, klt) -> None:
        self.tiles = tiles
        self.mean, self.basis, self.var, _ = klt
        self.components: list[np.ndarray] = []
        self.k = 0

    def bits(self, step: float) -> float:
        k = choose_k(self.var, step)
        if k > self.k:  # room for steps a few times finer, so that a search seldom projects again
            self.k = min(self.var.size, max(k, choose_k(self.var, step / 2)))
            b = self.basis[:, :self.k]
            self.components = [(b.T @ (x.reshape(x.shape[0], -1) - self.mean[:, None]))
                               .astype(np.float32).reshape(self.k, *x.shape[1:]) for x in self.tiles()]
        step = float(np.float32(step))
        heads = 8 * len(self.components) * (TILE_HEAD.size + k * PLANE_HEAD.size)
        return heads + MODEL_SCALE * float(sum(_model_bits(y, k, step, ROUNDING) for y in self.components))


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
