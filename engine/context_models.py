"""Context models for the quantised KLT component planes of one tile, and the tile's entropy coding.

A tile holds k planes q[c] (ints, c = 0 leading component). Planes are coded in order, each in raster
order; every sample's residual r = q - mu is coded with the Laplace table of a scale index (see
engine/entropy/laplace.py). Three models set (mu, index) from what the decoder already has:

* ZEROTH: mu = 0; one scale index per plane.
* HAND: mu = MED(W, N, NW) (the LOCO-I median predictor) or 0, chosen per plane; the index is looked up, in a table sent with the
  tile, from a bucket of local activity |W-NW| + |N-NW| + |N-NE| and of the magnitude of the previous
  plane's residual at the same pixel; plus a per-plane offset.
* LEARNED: mu from one of a few learned linear predictors (chosen per plane by the encoder); the index
  from a small MLP over integer log-magnitudes of the causal neighbours, of the previous plane's values and
  residuals around the pixel (that plane is fully decoded, so its non-causal neighbours count too) and of
  the component's standard deviation relative to the step; plus a per-plane offset chosen by the encoder.
  Its weights are integers (engine/weights/klt_context.npz, trained by engine/context_training.py) and the
  network runs in int64 arithmetic, so every machine computes the same index.

Every context is computed by one function, :func:`sample_context`, used by both the encoder and decoder.

Tile bytes: u8 model | u16 planes coded (the rest are zero) | HAND only: N_BUCKETS u8 table
            | per plane: u8 predictor, i8 index offset, u8 d1, u8 d2 | rANS stream.
d1 and d2 are the reconstruction offsets (in 1/512 step) of |q| = 1 and |q| >= 2: a sample is
dequantised to sign(q) (|q| - d) step, the centroid the encoder measured.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass

import numba
import numpy as np

from engine.entropy.laplace import N_SCALES, cost_table, load_tables, pop_residual, push_residual, residual_cost
from engine.entropy.rans import RANS_L, rans_encode, rans_init
from engine.errors import FormatError

ZEROTH, HAND, LEARNED = 0, 1, 2
MODEL_NAMES = {"zeroth": ZEROTH, "hand": HAND, "learned": LEARNED}
ACT_BUCKETS, PREV_BUCKETS = 7, 3
N_BUCKETS = ACT_BUCKETS * PREV_BUCKETS
N_FEATURES = 14
N_TAPS = 7  # W, N, NW, NE, WW, NN, MED
WEIGHTS_PATH = os.path.join(os.path.dirname(__file__), "weights", "klt_context.npz")
OFFSET_RANGE = 8  # per-plane index offsets tried by the encoder: [-8, 8]


@dataclass(frozen=True)
class LearnedWeights:
    """Integer parameters of the learned model (see :func:`mlp_index` for their fixed-point units)."""

    predictors: np.ndarray  # (P, N_TAPS) int64, weights in 1/256; row 0 predicts 0, row 1 is MED
    w1: np.ndarray  # (H, N_FEATURES) int64, in 1/256 per feature unit
    b1: np.ndarray  # (H,) int64, in 1/4096 (features are in 1/16 octave)
    w2: np.ndarray  # (H,) int64, in 1/256
    b2: int  # in 1/2^16 scale-index units


def load_learned(path: str = WEIGHTS_PATH) -> LearnedWeights:
    with np.load(path) as z:
        return LearnedWeights(z["predictors"].astype(np.int64), z["w1"].astype(np.int64),
                              z["b1"].astype(np.int64), z["w2"].astype(np.int64), int(z["b2"]))


def save_learned(w: LearnedWeights, path: str = WEIGHTS_PATH) -> None:
    np.savez(path, predictors=w.predictors.astype(np.int32), w1=w.w1.astype(np.int32),
             b1=w.b1.astype(np.int32), w2=w.w2.astype(np.int32), b2=np.int64(w.b2))


def dummy_learned() -> LearnedWeights:
    """Weights for the models that use none (Numba wants arrays of fixed types in every call)."""
    p = np.zeros((2, N_TAPS), np.int64)
    p[1, 6] = 256
    return LearnedWeights(p, np.zeros((1, N_FEATURES), np.int64), np.zeros(1, np.int64), np.zeros(1, np.int64), 0)


# --------------------------------------------------------------------------- the per-sample context


@numba.njit(cache=True, nogil=True)
def ilog(v):
    """16 log2(1 + v) for v >= 0, piecewise linear between octaves, in integers."""
    v = v + 1
    n = 0
    t = v
    while t > 1:
        t >>= 1
        n += 1
    frac = ((v << 4) >> n) - 16 if n < 58 else 0
    return 16 * n + frac


@numba.njit(cache=True, nogil=True)
def med(a, b, c):
    mx = max(a, b)
    mn = min(a, b)
    if c >= mx:
        return mn
    if c <= mn:
        return mx
    return a + b - c


@numba.njit(cache=True, nogil=True)
def at(p, y, x, h, w):
    if y < 0 or x < 0 or x >= w:
        return np.int64(0)
    return p[y, x]


@numba.njit(cache=True, nogil=True)
def prev_sums(q, res, c, y, x, h, w):
    """(|P|, sum |P| over 3x3, |Rp|, sum |Rp| over 3x3) of the previous plane (all 0 for plane 0)."""
    if c == 0:
        return 0, 0, 0, 0
    sp = 0
    sr = 0
    for dy in range(-1, 2):
        for dx in range(-1, 2):
            yy = y + dy
            xx = x + dx
            if 0 <= yy < h and 0 <= xx < w:
                sp += abs(q[c - 1, yy, xx])
                sr += abs(res[c - 1, yy, xx])
    return abs(q[c - 1, y, x]), sp, abs(res[c - 1, y, x]), sr


@numba.njit(cache=True, nogil=True)
def features(q, res, c, y, x, h, w, log_std_c, out):
    p = q[c]
    W = at(p, y, x - 1, h, w)
    N = at(p, y - 1, x, h, w)
    NW = at(p, y - 1, x - 1, h, w)
    NE = at(p, y - 1, x + 1, h, w)
    WW = at(p, y, x - 2, h, w)
    NN = at(p, y - 2, x, h, w)
    a, sp, r, sr = prev_sums(q, res, c, y, x, h, w)
    out[0] = ilog(abs(W))
    out[1] = ilog(abs(N))
    out[2] = ilog(abs(NW))
    out[3] = ilog(abs(NE))
    out[4] = ilog(abs(WW))
    out[5] = ilog(abs(NN))
    out[6] = ilog(abs(W - NW))
    out[7] = ilog(abs(N - NW))
    out[8] = ilog(abs(N - NE))
    out[9] = ilog(a)
    out[10] = ilog(sp)
    out[11] = ilog(r)
    out[12] = ilog(sr)
    out[13] = 4 * log_std_c  # quarter octaves -> 1/16 octave, like the other features


@numba.njit(cache=True, nogil=True)
def mlp_index(f, w1, b1, w2, b2):
    """Scale index (before the plane offset) from integer features: all arithmetic in int64.

    z1 = w1 f + b1 in 1/4096 (f in 1/16, w1 in 1/256); h = relu(z1) >> 4 in 1/256;
    z2 = w2 h + b2 in 1/65536; index = round(z2 / 65536).
    """
    z2 = b2
    for j in range(w1.shape[0]):
        z = b1[j]
        for i in range(w1.shape[1]):
            z += w1[j, i] * f[i]
        if z > 0:
            z2 += w2[j] * (z >> 4)
    return (z2 + 32768) >> 16


@numba.njit(cache=True, nogil=True)
def predict(p, y, x, h, w, taps):
    W = at(p, y, x - 1, h, w)
    N = at(p, y - 1, x, h, w)
    NW = at(p, y - 1, x - 1, h, w)
    s = (taps[0] * W + taps[1] * N + taps[2] * NW + taps[3] * at(p, y - 1, x + 1, h, w)
         + taps[4] * at(p, y, x - 2, h, w) + taps[5] * at(p, y - 2, x, h, w) + taps[6] * med(W, N, NW))
    return (s + 128) >> 8


@numba.njit(cache=True, nogil=True)
def hand_bucket(q, res, c, y, x, h, w):
    p = q[c]
    W = at(p, y, x - 1, h, w)
    N = at(p, y - 1, x, h, w)
    NW = at(p, y - 1, x - 1, h, w)
    NE = at(p, y - 1, x + 1, h, w)
    act = abs(W - NW) + abs(N - NW) + abs(N - NE)
    ab = 0
    while act > 0 and ab < ACT_BUCKETS - 1:  # 0, 1, 2-3, 4-7, ... octaves of activity
        act >>= 1
        ab += 1
    pb = 0
    if c > 0:
        rp = abs(res[c - 1, y, x])
        pb = 0 if rp == 0 else (1 if rp <= 2 else 2)
    return ab * PREV_BUCKETS + pb


@numba.njit(cache=True, nogil=True)
def sample_context(model, q, res, c, y, x, pred, log_std_c, table, preds, w1, b1, w2, b2, f):
    """(mu, scale index before the plane offset) of sample (c, y, x) from the samples decoded before it."""
    h, w = q.shape[1], q.shape[2]
    if model == ZEROTH:
        return np.int64(0), np.int64(0)
    if model == HAND:
        mu = predict(q[c], y, x, h, w, preds[pred])  # zero or MED, the encoder's choice for the plane
        return mu, np.int64(table[hand_bucket(q, res, c, y, x, h, w)])
    mu = predict(q[c], y, x, h, w, preds[pred])
    features(q, res, c, y, x, h, w, log_std_c, f)
    return mu, mlp_index(f, w1, b1, w2, b2)


@numba.njit(cache=True, nogil=True)
def clamp_index(i):
    return min(max(i, 0), N_SCALES - 1)


# --------------------------------------------------------------------------- encoder


@numba.njit(cache=True, nogil=True)
def plane_contexts(model, q, res, mu_out, idx_out, c, pred, log_std_c, table, preds, w1, b1, w2, b2):
    """Fill mu_out, idx_out (before offset) and res[c] for plane c (encoder: q[c] is known)."""
    h, w = q.shape[1], q.shape[2]
    f = np.zeros(N_FEATURES, np.int64)
    for y in range(h):
        for x in range(w):
            mu, i = sample_context(model, q, res, c, y, x, pred, log_std_c, table, preds, w1, b1, w2, b2, f)
            mu_out[y, x] = mu
            idx_out[y, x] = i
            res[c, y, x] = q[c, y, x] - mu


@numba.njit(cache=True, nogil=True)
def best_predictor(q, c, preds):
    """The predictor with the smallest sum of |residual| on plane c (an encoder choice, sent per plane)."""
    h, w = q.shape[1], q.shape[2]
    best = 0
    best_cost = np.int64(1) << 62
    for p in range(preds.shape[0]):
        s = np.int64(0)
        for y in range(h):
            for x in range(w):
                s += abs(q[c, y, x] - predict(q[c], y, x, h, w, preds[p]))
        if s < best_cost:
            best, best_cost = p, s
    return best


@numba.njit(cache=True, nogil=True)
def best_offset(res_c, idx_c, bits, nsym, lo, hi):
    best = lo
    best_bits = np.inf
    for o in range(lo, hi + 1):
        t = 0.0
        for y in range(res_c.shape[0]):
            for x in range(res_c.shape[1]):
                t += residual_cost(res_c[y, x], clamp_index(idx_c[y, x] + o), bits, nsym)
        if t < best_bits:
            best, best_bits = o, t
    return best


@numba.njit(cache=True, nogil=True)
def best_hand_table(res, buckets, bits, nsym, kt):
    """Per bucket, the scale index with the fewest bits over the tile's planes 0..kt-1.

    The maximum-likelihood Laplace scale (mean |r|) gives a centre; the 7 indices around it are costed exactly.
    """
    total = np.zeros(N_BUCKETS)
    count = np.zeros(N_BUCKETS)
    for c in range(kt):
        for y in range(res.shape[1]):
            for x in range(res.shape[2]):
                total[buckets[c, y, x]] += abs(res[c, y, x])
                count[buckets[c, y, x]] += 1
    centre = np.zeros(N_BUCKETS, np.int64)
    for b in range(N_BUCKETS):
        m = total[b] / max(count[b], 1.0)
        centre[b] = 0 if m <= 0.05 else clamp_index(np.int64(np.round(4.0 * np.log2(m / 0.05))))
    cost = np.zeros((N_BUCKETS, 7))
    for c in range(kt):
        for y in range(res.shape[1]):
            for x in range(res.shape[2]):
                b = buckets[c, y, x]
                for j in range(7):
                    cost[b, j] += residual_cost(res[c, y, x], clamp_index(centre[b] + j - 3), bits, nsym)
    table = np.zeros(N_BUCKETS, np.int64)
    for b in range(N_BUCKETS):
        table[b] = clamp_index(centre[b] + np.argmin(cost[b]) - 3)
    return table


@numba.njit(cache=True, nogil=True)
def encode_planes(model, q, kt, preds_of_plane, offsets, log_std, table, preds, w1, b1, w2, b2, cdf, nsym):
    h, w = q.shape[1], q.shape[2]
    res = np.zeros(q.shape, np.int64)
    mu = np.zeros((h, w), np.int64)
    idx = np.zeros((h, w), np.int64)
    n_max = kt * h * w * 5 + 8
    starts = np.empty(n_max, np.int64)
    freqs = np.empty(n_max, np.int64)
    n = 0
    for c in range(kt):
        plane_contexts(model, q, res, mu, idx, c, preds_of_plane[c], log_std[c], table, preds, w1, b1, w2, b2)
        for y in range(h):
            for x in range(w):
                n = push_residual(res[c, y, x], clamp_index(idx[y, x] + offsets[c]), cdf, nsym, starts, freqs, n)
    return rans_encode(starts, freqs, n)


@numba.njit(cache=True, nogil=True)
def decode_planes(model, data, k, kt, h, w, preds_of_plane, offsets, log_std, table, preds, w1, b1, w2, b2,
                  cdf, nsym):
    """(q (k, h, w), ok): ok is False when the stream does not end where it should."""
    q = np.zeros((k, h, w), np.int64)
    res = np.zeros((k, h, w), np.int64)
    f = np.zeros(N_FEATURES, np.int64)
    x_state, pos = rans_init(data, 0)
    if pos < 0:
        return q, False
    for c in range(kt):
        pred = preds_of_plane[c]
        for y in range(h):
            for x in range(w):
                mu, i = sample_context(model, q, res, c, y, x, pred, log_std[c], table, preds, w1, b1, w2, b2, f)
                r, x_state, pos = pop_residual(clamp_index(i + offsets[c]), cdf, nsym, x_state, data, pos)
                res[c, y, x] = r
                q[c, y, x] = r + mu
    return q, pos == data.size and x_state == RANS_L
