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
  network runs in integer arithmetic (the first layer's sums in float64, exact since they stay far below
  2^53: :func:`load_learned` checks it), so every machine computes the same index.

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
        w = LearnedWeights(z["predictors"].astype(np.int64), z["w1"].astype(np.int64),
                           z["b1"].astype(np.int64), z["w2"].astype(np.int64), int(z["b2"]))
    # features are at most ilog(2^63) ~ 1024: the first layer's float sums must stay exact integers
    if np.abs(w.w1).sum(axis=1).max() * 1024 + np.abs(w.b1).max() >= 2**50:
        raise ValueError(f"{path}: first-layer weights too large for exact sums")
    return w


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
    for b in (32, 16, 8, 4, 2, 1):  # n = floor(log2 v) by halving the width: no loop per bit
        if t >= (np.int64(1) << b):
            t >>= b
            n += b
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


PAD = 2  # zero border of the padded plane: causal neighbours outside the tile read 0, with no bounds tests


@numba.njit(cache=True, nogil=True)
def box3(a):
    """Sums of a (h, w) over the 3 x 3 window around each pixel, inside the plane (separable)."""
    h, w = a.shape
    rows = np.zeros((h, w), np.int64)
    for y in range(h):
        for x in range(w):
            v = a[y, x]
            if x > 0:
                v += a[y, x - 1]
            if x < w - 1:
                v += a[y, x + 1]
            rows[y, x] = v
    out = rows.copy()
    for y in range(h):
        if y > 0:
            out[y] += rows[y - 1]
        if y < h - 1:
            out[y] += rows[y + 1]
    return out


@numba.njit(cache=True, nogil=True)
def plane_terms(model, q, res, c, log_std_c, w1, b1, terms):
    """Per-pixel context terms of plane c that depend only on plane c - 1 (fully known) and constants.

    LEARNED: terms[y, x, j] = b1[j] + w1[j, 9:] . features[9:] (previous plane and std features, the
    ones :func:`prev_sums` defines), so the per-sample loop adds only the 9 causal features;
    HAND: terms[y, x, 0] is the previous-residual bucket.
    """
    h, w = q.shape[1], q.shape[2]
    base = (b1 + w1[:, 13] * 4 * log_std_c).astype(np.float64)
    if c == 0:
        if model == LEARNED:
            for y in range(h):
                for x in range(w):
                    terms[y, x, :] = base
        return
    ap = np.abs(q[c - 1])
    ar = np.abs(res[c - 1])
    if model == HAND:
        for y in range(h):
            for x in range(w):
                terms[y, x, 0] = 0 if ar[y, x] == 0 else (1 if ar[y, x] <= 2 else 2)
        return
    if model != LEARNED:
        return
    sp = box3(ap)
    sr = box3(ar)
    wt = np.ascontiguousarray(w1[:, 9:13].T).astype(np.float64)  # exact: integer sums far below 2^53
    for y in range(h):
        for x in range(w):
            fa, fsp, fr, fsr = ilog(ap[y, x]), ilog(sp[y, x]), ilog(ar[y, x]), ilog(sr[y, x])
            t = terms[y, x]
            for j in range(base.size):
                t[j] = base[j] + wt[0, j] * fa + wt[1, j] * fsp + wt[2, j] * fr + wt[3, j] * fsr


@numba.njit(cache=True, nogil=True, inline='always')  # no call overhead nor array refcounts per sample
def sample_context(model, P, L, terms, y, x, taps, table, w1t, w2, b2, z):
    """(mu, scale index before the plane offset) of sample (y, x) from the samples decoded before it.

    P: the plane being coded with a PAD border of zeros, filled up to the sample before (y, x); L: ilog(|P|).
    The one context function of encoder and decoder; equal to mlp_index(features(...)) for LEARNED.
    """
    if model == ZEROTH:
        return np.int64(0), np.int64(0)
    py = y + PAD
    px = x + PAD
    W = P[py, px - 1]
    N = P[py - 1, px]
    NW = P[py - 1, px - 1]
    NE = P[py - 1, px + 1]
    s = (taps[0] * W + taps[1] * N + taps[2] * NW + taps[3] * NE + taps[4] * P[py, px - 2]
         + taps[5] * P[py - 2, px] + taps[6] * med(W, N, NW))
    mu = (s + 128) >> 8
    if model == HAND:  # mu: zero or MED, the encoder's choice for the plane
        act = abs(W - NW) + abs(N - NW) + abs(N - NE)
        ab = 0
        while act > 0 and ab < ACT_BUCKETS - 1:  # 0, 1, 2-3, 4-7, ... octaves of activity
            act >>= 1
            ab += 1
        return mu, np.int64(table[ab * PREV_BUCKETS + np.int64(terms[y, x, 0])])
    f0 = L[py, px - 1]
    f1 = L[py - 1, px]
    f2 = L[py - 1, px - 1]
    f3 = L[py - 1, px + 1]
    f4 = L[py, px - 2]
    f5 = L[py - 2, px]
    f6 = ilog(abs(W - NW))
    f7 = ilog(abs(N - NW))
    f8 = ilog(abs(N - NE))
    t = terms[y, x]
    for j in range(z.size):  # a plain loop over the hidden units, which the compiler vectorises
        z[j] = (t[j] + w1t[0, j] * f0 + w1t[1, j] * f1 + w1t[2, j] * f2 + w1t[3, j] * f3
                + w1t[4, j] * f4 + w1t[5, j] * f5 + w1t[6, j] * f6 + w1t[7, j] * f7 + w1t[8, j] * f8)
    z2 = b2
    for j in range(z.size):
        z2 += w2[j] * (max(np.int64(z[j]), 0) >> 4)
    return mu, (z2 + 32768) >> 16


@numba.njit(cache=True, nogil=True)
def plane_state(model, q, res, c, log_std_c, w1, b1):
    """(padded plane, its ilog plane, per-pixel terms, causal weights transposed) to code plane c with."""
    h, w = q.shape[1], q.shape[2]
    P = np.zeros((h + PAD, w + PAD + 1), np.int64)
    L = np.zeros((h + PAD, w + PAD + 1), np.int64)
    terms = np.zeros((h, w, w1.shape[0]), np.float64)
    plane_terms(model, q, res, c, log_std_c, w1, b1, terms)
    w1t = np.ascontiguousarray(w1[:, :9].T).astype(np.float64)
    return P, L, terms, w1t


@numba.njit(cache=True, nogil=True)
def clamp_index(i):
    return min(max(i, 0), N_SCALES - 1)


# --------------------------------------------------------------------------- encoder


@numba.njit(cache=True, nogil=True)
def plane_contexts(model, q, res, mu_out, idx_out, c, pred, log_std_c, table, preds, w1, b1, w2, b2):
    """Fill mu_out, idx_out (before offset) and res[c] for plane c (encoder: q[c] is known)."""
    h, w = q.shape[1], q.shape[2]
    P, L, terms, w1t = plane_state(model, q, res, c, log_std_c, w1, b1)
    z = np.zeros(w1.shape[0], np.float64)
    taps = preds[pred]
    for y in range(h):
        for x in range(w):
            mu, i = sample_context(model, P, L, terms, y, x, taps, table, w1t, w2, b2, z)
            mu_out[y, x] = mu
            idx_out[y, x] = i
            v = q[c, y, x]
            res[c, y, x] = v - mu
            P[y + PAD, x + PAD] = v
            L[y + PAD, x + PAD] = ilog(abs(v))


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
def encode_planes(res, idx, offsets, kt, cdf, nsym):
    """The rANS stream of planes 0..kt-1 from their residuals and scale indices (before the plane offsets)."""
    h, w = res.shape[1], res.shape[2]
    n_max = kt * h * w * 5 + 8
    starts = np.empty(n_max, np.int64)
    freqs = np.empty(n_max, np.int64)
    n = 0
    for c in range(kt):
        for y in range(h):
            for x in range(w):
                n = push_residual(res[c, y, x], clamp_index(idx[c, y, x] + offsets[c]), cdf, nsym, starts, freqs, n)
    return rans_encode(starts, freqs, n)


@numba.njit(cache=True, nogil=True)
def decode_planes(model, data, k, kt, h, w, preds_of_plane, offsets, log_std, table, preds, w1, b1, w2, b2,
                  cdf, nsym):
    """(q (k, h, w), ok): ok is False when the stream does not end where it should."""
    q = np.zeros((k, h, w), np.int64)
    res = np.zeros((k, h, w), np.int64)
    z = np.zeros(w1.shape[0], np.float64)
    x_state, pos = rans_init(data, 0)
    if pos < 0:
        return q, False
    for c in range(kt):
        P, L, terms, w1t = plane_state(model, q, res, c, log_std[c], w1, b1)
        taps = preds[preds_of_plane[c]]
        off = offsets[c]
        for y in range(h):
            for x in range(w):
                mu, i = sample_context(model, P, L, terms, y, x, taps, table, w1t, w2, b2, z)
                r, x_state, pos = pop_residual(clamp_index(i + off), cdf, nsym, x_state, data, pos)
                v = r + mu
                res[c, y, x] = r
                q[c, y, x] = v
                P[y + PAD, x + PAD] = v
                L[y + PAD, x + PAD] = ilog(abs(v))
    return q, pos == data.size and x_state == RANS_L
