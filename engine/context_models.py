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
def plane_state(model, q, res, c, log_std_c, w1, b1):
    """What coding plane c needs besides the samples decoded in it: (P, L, prev, rowz, rowmu, feats).

    P: the plane with a PAD border of zeros, filled as samples are coded; L: ilog(|P|), likewise.
    prev (4, h, w): LEARNED, the previous-plane features of :func:`prev_sums` as ilogs (all 0 for plane
    0); HAND, prev[0] is the previous-residual bucket. rowz (H, w), rowmu (w), feats (6, w): per-row work
    space of :func:`row_terms`.
    """
    h, w = q.shape[1], q.shape[2]
    P = np.zeros((h + PAD, w + PAD + 1), np.int64)
    L = np.zeros((h + PAD, w + PAD + 1), np.int64)
    prev = np.zeros((4, h, w), np.int64)
    if c > 0 and model == HAND:
        for y in range(h):
            for x in range(w):
                r = abs(res[c - 1, y, x])
                prev[0, y, x] = 0 if r == 0 else (1 if r <= 2 else 2)
    elif c > 0 and model == LEARNED:
        ap = np.abs(q[c - 1])
        ar = np.abs(res[c - 1])
        sp = box3(ap)
        sr = box3(ar)
        for y in range(h):
            for x in range(w):
                prev[0, y, x] = ilog(ap[y, x])
                prev[1, y, x] = ilog(sp[y, x])
                prev[2, y, x] = ilog(ar[y, x])
                prev[3, y, x] = ilog(sr[y, x])
    return P, L, prev, np.zeros((w1.shape[0], w), np.int64), np.zeros(w, np.int64), np.zeros((6, w), np.int64)


@numba.njit(cache=True, nogil=True)
def row_terms(model, P, L, prev, y, log_std_c, taps, w1, b1, rowz, rowmu, feats):
    """The parts of row y's contexts that do not depend on samples of row y (known when the row starts).

    rowmu[x]: the predictor's sum over N, NW, NE, NN; LEARNED, rowz[j, x]: hidden unit j's pre-activation
    over every feature but those of W, WW and W - NW (in exact integers, so any summation order gives
    the same value: the encoder and decoder agree bit for bit).
    """
    w = rowmu.shape[0]
    py = y + PAD
    for x in range(w):
        px = x + PAD
        rowmu[x] = (taps[1] * P[py - 1, px] + taps[2] * P[py - 1, px - 1] + taps[3] * P[py - 1, px + 1]
                    + taps[5] * P[py - 2, px])
    if model != LEARNED:
        return
    f = feats
    for x in range(w):
        px = x + PAD
        N = P[py - 1, px]
        f[0, x] = L[py - 1, px]
        f[1, x] = L[py - 1, px - 1]
        f[2, x] = L[py - 1, px + 1]
        f[3, x] = L[py - 2, px]
        f[4, x] = ilog(abs(N - P[py - 1, px - 1]))
        f[5, x] = ilog(abs(N - P[py - 1, px + 1]))
    for j in range(rowz.shape[0]):  # x innermost: the compiler vectorises over the row
        c0 = b1[j] + w1[j, 13] * 4 * log_std_c
        for x in range(w):
            rowz[j, x] = (c0 + w1[j, 9] * prev[0, y, x] + w1[j, 10] * prev[1, y, x] + w1[j, 11] * prev[2, y, x]
                          + w1[j, 12] * prev[3, y, x] + w1[j, 1] * f[0, x] + w1[j, 2] * f[1, x]
                          + w1[j, 3] * f[2, x] + w1[j, 5] * f[3, x] + w1[j, 7] * f[4, x] + w1[j, 8] * f[5, x])


@numba.njit(cache=True, nogil=True, inline='always')  # no call overhead nor array refcounts per sample
def sample_context(model, P, L, prev, rowz, rowmu, y, x, taps, table, w1, w2, b2):
    """(mu, scale index before the plane offset) of sample (y, x) from the samples decoded before it.

    P, L: the padded plane and its ilogs, filled up to the sample before (y, x); rowz, rowmu: row y's
    :func:`row_terms`. The one context function of encoder and decoder; equal to mlp_index(features(...))
    for LEARNED. Only W, WW and W - NW are left per sample: the chain from one decoded sample to the next
    is as short as it can be.
    """
    if model == ZEROTH:
        return np.int64(0), np.int64(0)
    py = y + PAD
    px = x + PAD
    W = P[py, px - 1]
    N = P[py - 1, px]
    NW = P[py - 1, px - 1]
    mu = (rowmu[x] + taps[0] * W + taps[4] * P[py, px - 2] + taps[6] * med(W, N, NW) + 128) >> 8
    if model == HAND:  # mu: zero or MED, the encoder's choice for the plane
        NE = P[py - 1, px + 1]
        act = abs(W - NW) + abs(N - NW) + abs(N - NE)
        ab = 0
        while act > 0 and ab < ACT_BUCKETS - 1:  # 0, 1, 2-3, 4-7, ... octaves of activity
            act >>= 1
            ab += 1
        return mu, np.int64(table[ab * PREV_BUCKETS + prev[0, y, x]])
    f0 = L[py, px - 1]
    f4 = L[py, px - 2]
    f6 = ilog(abs(W - NW))
    z2 = b2
    for j in range(rowz.shape[0]):
        z = rowz[j, x] + w1[j, 0] * f0 + w1[j, 4] * f4 + w1[j, 6] * f6
        z2 += w2[j] * (max(z, 0) >> 4)  # no branch: the sign of z is unpredictable
    return mu, (z2 + 32768) >> 16


@numba.njit(cache=True, nogil=True)
def clamp_index(i):
    return min(max(i, 0), N_SCALES - 1)


# --------------------------------------------------------------------------- encoder


@numba.njit(cache=True, nogil=True)
def plane_contexts(model, q, res, mu_out, idx_out, c, pred, log_std_c, table, preds, w1, b1, w2, b2):
    """Fill mu_out, idx_out (before offset) and res[c] for plane c (encoder: q[c] is known)."""
    h, w = q.shape[1], q.shape[2]
    P, L, prev, rowz, rowmu, feats = plane_state(model, q, res, c, log_std_c, w1, b1)
    taps = preds[pred]
    for y in range(h):
        row_terms(model, P, L, prev, y, log_std_c, taps, w1, b1, rowz, rowmu, feats)
        for x in range(w):
            mu, i = sample_context(model, P, L, prev, rowz, rowmu, y, x, taps, table, w1, w2, b2)
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
    n = preds.shape[0]
    cost = np.zeros(n, np.int64)
    p = q[c]
    for y in range(h):  # neighbours read once per sample for all predictors (integer sums: order-free)
        for x in range(w):
            W = at(p, y, x - 1, h, w)
            N = at(p, y - 1, x, h, w)
            NW = at(p, y - 1, x - 1, h, w)
            NE = at(p, y - 1, x + 1, h, w)
            WW = at(p, y, x - 2, h, w)
            NN = at(p, y - 2, x, h, w)
            M = med(W, N, NW)
            v = p[y, x]
            for i in range(n):
                t = preds[i]
                s = t[0] * W + t[1] * N + t[2] * NW + t[3] * NE + t[4] * WW + t[5] * NN + t[6] * M
                cost[i] += abs(v - ((s + 128) >> 8))
    best = 0
    best_cost = np.int64(1) << 62
    for i in range(n):
        if cost[i] < best_cost:
            best, best_cost = i, cost[i]
    return best


@numba.njit(cache=True, nogil=True)
def best_offset(res_c, idx_c, bits, nsym, lo, hi):
    # Every offset's float sum runs over the samples in raster order, as one loop per offset would:
    # the same totals to the last bit, so the same choice.
    tot = np.zeros(hi - lo + 1)
    for y in range(res_c.shape[0]):
        for x in range(res_c.shape[1]):
            r = res_c[y, x]
            i = idx_c[y, x]
            for o in range(lo, hi + 1):
                tot[o - lo] += residual_cost(r, clamp_index(i + o), bits, nsym)
    best = lo
    best_bits = np.inf
    for o in range(lo, hi + 1):
        if tot[o - lo] < best_bits:
            best, best_bits = o, tot[o - lo]
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
                  cdf, nsym, lut):
    """(q (k, h, w), ok): ok is False when the stream does not end where it should."""
    q = np.zeros((k, h, w), np.int64)
    res = np.zeros((k, h, w), np.int64)
    x_state, pos = rans_init(data, 0)
    if pos < 0:
        return q, False
    for c in range(kt):
        P, L, prev, rowz, rowmu, feats = plane_state(model, q, res, c, log_std[c], w1, b1)
        taps = preds[preds_of_plane[c]]
        off = offsets[c]
        for y in range(h):
            row_terms(model, P, L, prev, y, log_std[c], taps, w1, b1, rowz, rowmu, feats)
            for x in range(w):
                mu, i = sample_context(model, P, L, prev, rowz, rowmu, y, x, taps, table, w1, w2, b2)
                r, x_state, pos = pop_residual(clamp_index(i + off), cdf, nsym, lut, x_state, data, pos)
                v = r + mu
                res[c, y, x] = r
                q[c, y, x] = v
                P[y + PAD, x + PAD] = v
                L[y + PAD, x + PAD] = ilog(abs(v))
    return q, pos == data.size and x_state == RANS_L
