"""Static tables of discretised Laplace distributions, and how an integer residual is coded with them.

A residual r (an integer, the quantised value minus its predicted integer mean) is coded with the table of
scale index i: scale(i) = SCALE_MIN * 2^(i / 4), i in [0, N_SCALES). Only the first N_TABLES scales (below
about 16 quantiser steps) have a table of their own; a larger scale codes ``r >> shift`` with the table
``shift`` octaves lower and the ``shift`` low bits uniformly (a Laplace that wide is flat over them).
Each table covers r in [-R, R] and one escape symbol, after which zigzag(r) follows as two uniform
16-bit chunks.

The integer frequencies are built once with float maths and shipped (engine/weights/klt_laplace_tables.npz):
coder and decoder must use identical tables on every machine, and numpy's exp may differ by an ulp between
CPUs, which could move a rounding.
"""

from __future__ import annotations

import os

import numba
import numpy as np

from engine.entropy.rans import PROB_BITS, PROB_SCALE, rans_advance, rans_slot

SCALE_MIN = 0.05
STEPS_PER_OCTAVE = 4
N_TABLES = 34  # scale(33) ~ 15.2
MAX_SHIFT = 12
N_SCALES = N_TABLES + STEPS_PER_OCTAVE * MAX_SHIFT
R_MAX = 192
LUT_BITS = 10  # slot -> symbol lookup: 1024 entries per table (a few kB, in cache) then a short walk
TABLES_PATH = os.path.join(os.path.dirname(os.path.dirname(__file__)), "weights", "klt_laplace_tables.npz")


def scale_of(index) -> np.ndarray:
    """The Laplace scale (in quantiser steps) of a scale index."""
    return SCALE_MIN * 2.0 ** (np.asarray(index, dtype=np.float64) / STEPS_PER_OCTAVE)


def build_tables() -> tuple[np.ndarray, np.ndarray]:
    """(cdf (N_TABLES, 2 R_MAX + 3) uint32, nsym (N_TABLES,) int32): the tables from their definition."""
    cdf = np.zeros((N_TABLES, 2 * R_MAX + 3), dtype=np.uint32)
    nsym = np.zeros(N_TABLES, dtype=np.int32)
    for t in range(N_TABLES):
        s = float(scale_of(t))
        r = int(min(R_MAX, max(4, np.ceil(12.0 * s) + 2)))
        v = np.arange(-r, r + 1, dtype=np.float64)
        upper = np.where(v >= 0, 1.0 - 0.5 * np.exp(-(v + 0.5) / s), 0.5 * np.exp((v + 0.5) / s))
        lower = np.where(v > 0, 1.0 - 0.5 * np.exp(-(v - 0.5) / s), 0.5 * np.exp((v - 0.5) / s))
        p = np.append(upper - lower, np.exp(-(r + 0.5) / s))  # the last symbol is the escape
        n = p.size
        f = np.maximum(1, np.floor(p / p.sum() * (PROB_SCALE - n)).astype(np.int64) + 1)
        f[np.argmax(f)] += PROB_SCALE - f.sum()  # exact total; the mode absorbs the rounding
        nsym[t] = n
        cdf[t, 1 : n + 1] = np.cumsum(f)
    return cdf, nsym


def load_tables() -> tuple[np.ndarray, np.ndarray]:
    """The shipped tables (see the module docstring for why they are not rebuilt at import)."""
    with np.load(TABLES_PATH) as z:
        return z["cdf"].astype(np.uint32), z["nsym"].astype(np.int32)


def save_tables(path: str = TABLES_PATH) -> None:
    cdf, nsym = build_tables()
    np.savez_compressed(path, cdf=cdf, nsym=nsym)


def cost_table(cdf: np.ndarray, nsym: np.ndarray) -> np.ndarray:
    """Bits of each symbol of each table (encoder-side estimates only; never decides a decoded value)."""
    f = np.diff(cdf.astype(np.float64), axis=1)
    with np.errstate(divide="ignore"):
        bits = PROB_BITS - np.log2(np.where(f > 0, f, 1.0))
    for t in range(cdf.shape[0]):
        bits[t, nsym[t]:] = np.inf
    return bits


@numba.njit(cache=True)
def split_index(i):
    """(table, shift) for scale index i."""
    if i < N_TABLES:
        return i, 0
    shift = (i - N_TABLES) // STEPS_PER_OCTAVE + 1
    return i - STEPS_PER_OCTAVE * shift, shift


@numba.njit(cache=True, inline='always')
def push_residual(r, i, cdf, nsym, starts, freqs, n):
    """Append the symbols coding residual r with scale index i; returns the new count."""
    t, shift = split_index(i)
    hi = r >> shift
    half = (nsym[t] - 2) // 2
    if -half <= hi <= half:
        j = hi + half
        starts[n] = cdf[t, j]
        freqs[n] = cdf[t, j + 1] - cdf[t, j]
        n += 1
    else:
        j = nsym[t] - 1
        starts[n] = cdf[t, j]
        freqs[n] = cdf[t, j + 1] - cdf[t, j]
        z = (hi << 1) ^ (hi >> 63)  # zigzag: small magnitudes -> small codes
        starts[n + 1] = z & 0xFFFF
        freqs[n + 1] = 1
        starts[n + 2] = (z >> 16) & 0xFFFF
        freqs[n + 2] = 1
        n += 3
    if shift > 0:
        lo = r - (hi << shift)
        starts[n] = lo << (PROB_BITS - shift)
        freqs[n] = 1 << (PROB_BITS - shift)
        n += 1
    return n


@numba.njit(cache=True)
def residual_cost(r, i, bits, nsym):
    """Estimated bits of residual r with scale index i (encoder decisions only)."""
    t, shift = split_index(i)
    hi = r >> shift
    half = (nsym[t] - 2) // 2
    if -half <= hi <= half:
        return bits[t, hi + half] + shift
    return bits[t, nsym[t] - 1] + 32.0 + shift


def symbol_lut(cdf: np.ndarray, nsym: np.ndarray) -> np.ndarray:
    """(N_TABLES, 2^LUT_BITS) int32: per table, the symbol whose interval holds the first slot of each of
    2^LUT_BITS equal slot ranges, where :func:`pop_residual` starts its (short) search."""
    lut = np.zeros((cdf.shape[0], 1 << LUT_BITS), dtype=np.int32)
    firsts = np.arange(1 << LUT_BITS, dtype=np.int64) << (PROB_BITS - LUT_BITS)
    for t in range(cdf.shape[0]):
        lut[t] = np.searchsorted(cdf[t, : nsym[t]].astype(np.int64), firsts, side="right") - 1
    return lut


@numba.njit(cache=True, inline='always')  # called per sample: no call overhead nor array refcounts
def pop_residual(i, cdf, nsym, lut, x, data, pos):
    """Decode one residual with scale index i: (r, state, position). ``lut``: :func:`symbol_lut`."""
    t, shift = split_index(i)
    n = nsym[t]
    slot = rans_slot(x)
    j = np.int64(lut[t, slot >> (PROB_BITS - LUT_BITS)])
    while j < n - 1 and cdf[t, j + 1] <= slot:  # the last j with cdf[t, j] <= slot
        j += 1
    x, pos = rans_advance(x, data, pos, np.int64(cdf[t, j]), np.int64(cdf[t, j + 1] - cdf[t, j]))
    if j == n - 1:
        a = rans_slot(x)
        x, pos = rans_advance(x, data, pos, a, 1)
        b = rans_slot(x)
        x, pos = rans_advance(x, data, pos, b, 1)
        z = a | (b << 16)
        hi = (z >> 1) ^ -(z & 1)
    else:
        hi = np.int64(j - (n - 2) // 2)
    r = hi
    if shift > 0:
        lo = rans_slot(x) >> (PROB_BITS - shift)
        x, pos = rans_advance(x, data, pos, lo << (PROB_BITS - shift), 1 << (PROB_BITS - shift))
        r = (hi << shift) + lo
    return r, x, pos
