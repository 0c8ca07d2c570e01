"""The scene's Karhunen-Loeve transform (KLT, PCA over spectra): streaming fit and its compact side information.

Fit: :class:`KLTAccumulator` is fed tile by tile (normalised float32 tiles (bands, h, w) with their valid
masks) and keeps float64 band sums and the band x band sum of outer products over the pixels that have any
valid band, so memory is O(bands^2) whatever the scene size. Bands with no valid sample anywhere are left
out of the transform (their basis rows and mean are 0). :meth:`KLTAccumulator.klt` returns the mean,
eigenvectors and variances, leading component first.

Side information: :class:`SpectralStage` is what a decoder needs: the quantiser step, the mean and the k
leading basis vectors, each quantised with a power-of-two step (exact in binary floating point, so every
machine dequantises to the same float64 values), plus each component's standard deviation relative to the
step (quarter octaves) for the context models. Encoder and decoder both use the dequantised mean and basis.

    to_bytes:  u8 version | u16 bands | u16 k | f32 step | u8 mean exponent | bands/8 bytes used-band bitmap
               | k x (i8 log-std index, u8 basis exponent, u8 predict flag, u8 table) | u8 mean table
               | rANS stream: the mean (first differences along used bands), then each basis column
                 (raw or first differences, as its predict flag says), coded with the Laplace tables.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np

from engine.entropy.laplace import (N_SCALES, cost_table, load_tables, pop_residual, push_residual, residual_cost,
                                    symbol_lut)
from engine.entropy.rans import rans_encode, rans_init
from engine.errors import FormatError, InputError
from engine.format.klt import STAGE_COLUMN, STAGE_HEAD, STAGE_MEAN_TABLE

STAGE_VERSION = 1
# Basis-quantisation error added to the component MSE, as a fraction of the quantiser's step^2 / 12
# (split over the k columns). Tuned on train/ scenes by scripts/klt_rd.py.
BASIS_ERROR_SHARE = 0.015
MEAN_ERROR_SHARE = 0.002


class KLTAccumulator:
    """Band sums and outer products of the valid pixels, accumulated tile by tile in float64."""

    def __init__(self, bands: int) -> None:
        if isinstance(bands, bool) or not isinstance(bands, (int, np.integer)) or bands < 1:
            raise InputError(f"bands must be a positive integer, got {bands!r}")
        self.bands = int(bands)
        self.n = 0
        self.shift: np.ndarray | None = None  # a first estimate of the mean, subtracted for accuracy
        self.sum = np.zeros(self.bands)
        self.outer = np.zeros((self.bands, self.bands))
        self.band_valid = np.zeros(self.bands, dtype=np.int64)

    def add(self, tile: np.ndarray, valid: np.ndarray | None = None) -> None:
        """Add a (bands, h, w) tile; ``valid`` (same shape, bool) marks data samples (None: all)."""
        tile = np.asarray(tile)
        if tile.ndim != 3 or tile.shape[0] != self.bands:
            raise InputError(f"tile must be ({self.bands}, h, w), got shape {tile.shape}")
        x = tile.reshape(self.bands, -1).astype(np.float64)
        if valid is None:
            use = np.ones(x.shape[1], dtype=bool)
            self.band_valid += x.shape[1]
        else:
            v = np.asarray(valid, dtype=bool).reshape(self.bands, -1)
            if v.shape != x.shape:
                raise InputError(f"valid mask shape {np.shape(valid)} differs from tile shape {tile.shape}")
            use = v.any(axis=0)
            self.band_valid += v.sum(axis=1)
        x = x[:, use]
        if x.shape[1] == 0:
            return
        if not np.isfinite(x).all():
            raise InputError("a tile has non-finite samples where it is valid (fill nodata first)")
        if self.shift is None:
            self.shift = x.mean(axis=1)
        x -= self.shift[:, None]
        self.n += x.shape[1]
        self.sum += x.sum(axis=1)
        self.outer += x @ x.T

    def used_bands(self) -> np.ndarray:
        """Bands with at least one valid sample."""
        return self.band_valid > 0

    def klt(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(mean (bands,), basis (bands, bands) columns by decreasing variance, variances (bands,))."""
        if self.n == 0:
            raise InputError("no valid pixel was added: a KLT needs data")
        used = self.used_bands()
        m = self.sum / self.n
        cov = self.outer / self.n - np.outer(m, m)
        cov[~used, :] = 0.0
        cov[:, ~used] = 0.0
        var, vecs = np.linalg.eigh(cov)
        order = np.argsort(var)[::-1]
        var, vecs = np.maximum(var[order], 0.0), vecs[:, order]
        vecs[~used, :] = 0.0
        # A fixed sign (largest entry positive) so that the basis does not depend on LAPACK's choice.
        big = np.argmax(np.abs(vecs), axis=0)
        vecs *= np.where(vecs[big, np.arange(self.bands)] < 0, -1.0, 1.0)
        mean = np.where(used, m + self.shift, 0.0)
        return mean, vecs, var


def fit_klt(tiles, bands: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(mean, basis, variances, used bands) from an iterable of (tile, valid) pairs."""
    acc = KLTAccumulator(bands)
    for tile, valid in tiles:
        acc.add(tile, valid)
    mean, basis, var = acc.klt()
    return mean, basis, var, acc.used_bands()


@dataclass(frozen=True)
class SpectralStage:
    """The dequantised spectral stage shared by encoder and decoder; build with :func:`make_stage`."""

    step: float  # the component quantiser step (float32-exact)
    mean: np.ndarray  # (bands,) float64, dequantised
    basis: np.ndarray  # (bands, k) float64, dequantised
    log_std: np.ndarray  # (k,) int8: round(4 log2(std_c / step)), side information for the context models
    used: np.ndarray  # (bands,) bool
    mean_exp: int
    basis_exp: np.ndarray  # (k,) uint8: column c is quantised with step 2^-basis_exp[c]

    @property
    def bands(self) -> int:
        return self.mean.size

    @property
    def k(self) -> int:
        return self.basis.shape[1]

    def to_bytes(self) -> bytes:
        return _stage_bytes(self)

    @staticmethod
    def from_bytes(blob: bytes) -> "SpectralStage":
        return _stage_from_bytes(blob)


def _exponent(target_step: float, lo: int = 0, hi: int = 40) -> int:
    """The e in [lo, hi] with 2^-e the largest power of two not above target_step."""
    if not target_step > 0:
        return hi
    return int(min(hi, max(lo, math.ceil(-math.log2(target_step)))))


def make_stage(mean: np.ndarray, basis: np.ndarray, var: np.ndarray, used: np.ndarray, step: float,
               k: int, basis_share: float | None = None, mean_share: float | None = None,
               precision: float | None = None) -> SpectralStage:
    """Quantise a KLT for quantiser ``step`` keeping ``k`` components.

    The basis column c is quantised with step D_c so that its error adds about
    ``basis_share`` x P^2/12 to the MSE over the k columns: the error D_c^2/12 per band
    costs var_c D_c^2/12 per sample, so D_c = P sqrt(basis_share / k / var_c) (rounded down to a power of two).
    P is ``precision`` (default ``step``): the seed codecs quantise their planes with a step of their own.
    """
    basis_share = BASIS_ERROR_SHARE if basis_share is None else basis_share
    mean_share = MEAN_ERROR_SHARE if mean_share is None else mean_share
    step = float(np.float32(step))
    if not (np.isfinite(step) and step > 0):
        raise InputError(f"step must be a positive finite number, got {step!r}")
    prec = step if precision is None else float(precision)
    bands = mean.size
    k = int(min(max(k, 0), bands))
    std = np.sqrt(np.maximum(var[:k], 1e-30))
    log_std = np.clip(np.round(4 * np.log2(std / step)), -128, 127).astype(np.int8)
    basis_exp = np.array([_exponent(prec * math.sqrt(basis_share / max(k, 1)) / s, 1, 30) for s in std],
                         dtype=np.uint8)
    mean_exp = _exponent(prec * math.sqrt(mean_share), 0, 40)
    mq = np.round(np.where(used, mean, 0.0) * 2.0**mean_exp) / 2.0**mean_exp
    bq = np.round(np.where(used[:, None], basis[:, :k], 0.0) * 2.0 ** basis_exp.astype(np.float64)) \
        / 2.0 ** basis_exp.astype(np.float64)
    return SpectralStage(step, mq, bq, log_std, np.asarray(used, bool).copy(), mean_exp, basis_exp)


# --------------------------------------------------------------------------- bytes


def _best_table(seq: np.ndarray, bits: np.ndarray, nsym: np.ndarray) -> tuple[int, float]:
    """The scale index coding ``seq`` in the fewest estimated bits."""
    if seq.size == 0:
        return 0, 0.0
    mag = float(np.mean(np.abs(seq))) + 1e-9
    centre = int(np.clip(round(4 * math.log2(mag / 0.05)), 0, N_SCALES - 1))
    best, best_bits = centre, math.inf
    for i in range(max(0, centre - 6), min(N_SCALES, centre + 7)):
        b = _seq_cost(seq, i, bits, nsym)
        if b < best_bits:
            best, best_bits = i, b
    return best, best_bits


@numba.njit(cache=True)
def _seq_cost(seq, i, bits, nsym):
    total = 0.0
    for v in seq:
        total += residual_cost(v, i, bits, nsym)
    return total


@numba.njit(cache=True)
def _push_seq(seq, i, cdf, nsym, starts, freqs, n):
    for v in seq:
        n = push_residual(v, i, cdf, nsym, starts, freqs, n)
    return n


@numba.njit(cache=True)
def _pop_seq(count, i, cdf, nsym, lut, x, data, pos):
    out = np.empty(count, dtype=np.int64)
    for j in range(count):
        out[j], x, pos = pop_residual(i, cdf, nsym, lut, x, data, pos)
    return out, x, pos


def _stage_bytes(st: SpectralStage) -> bytes:
    cdf, nsym = load_tables()
    bits = cost_table(cdf, nsym)
    used = st.used
    mq = np.round(st.mean[used] * 2.0**st.mean_exp).astype(np.int64)
    mean_seq = np.diff(mq, prepend=0)
    mean_table, _ = _best_table(mean_seq, bits, nsym)
    seqs, meta = [mean_seq], []
    for c in range(st.k):
        col = np.round(st.basis[used, c] * 2.0 ** int(st.basis_exp[c])).astype(np.int64)
        options = [col, np.diff(col, prepend=0)]
        costs = [_best_table(o, bits, nsym) for o in options]
        pred = int(costs[1][1] < costs[0][1])
        seqs.append(options[pred])
        meta.append((int(st.log_std[c]), int(st.basis_exp[c]), pred, costs[pred][0]))
    tables = [mean_table] + [m[3] for m in meta]
    total = sum(s.size for s in seqs)
    starts = np.empty(4 * total + 8, dtype=np.int64)
    freqs = np.empty(4 * total + 8, dtype=np.int64)
    n = 0
    for s, t in zip(seqs, tables):
        n = _push_seq(s, t, cdf, nsym, starts, freqs, n)
    stream = rans_encode(starts, freqs, n).tobytes()
    head = STAGE_HEAD.pack(STAGE_VERSION, st.bands, st.k, st.step, st.mean_exp)
    head += np.packbits(used.astype(np.uint8), bitorder="little").tobytes()
    head += b"".join(STAGE_COLUMN.pack(*m) for m in meta) + STAGE_MEAN_TABLE.pack(mean_table)
    return head + stream


def _stage_from_bytes(blob: bytes) -> SpectralStage:
    blob = bytes(blob)
    fixed = STAGE_HEAD.size
    if len(blob) < fixed:
        raise FormatError("spectral stage truncated")
    version, bands, k, step, mean_exp = STAGE_HEAD.unpack_from(blob)
    if version != STAGE_VERSION:
        raise FormatError(f"spectral stage version {version} is not supported (this build reads {STAGE_VERSION})")
    nbit = (bands + 7) // 8
    pos = fixed + nbit + 4 * k + 1
    if bands < 1 or k > bands or len(blob) < pos + 4 or not (np.isfinite(step) and step > 0):
        raise FormatError("spectral stage header is corrupt or truncated")
    used = np.unpackbits(np.frombuffer(blob, np.uint8, nbit, fixed), count=bands, bitorder="little").astype(bool)
    meta = [STAGE_COLUMN.unpack_from(blob, fixed + nbit + 4 * c) for c in range(k)]
    mean_table = blob[pos - 1]
    if any(m[3] >= N_SCALES or m[2] > 1 for m in meta) or mean_table >= N_SCALES:
        raise FormatError("spectral stage header is corrupt")
    cdf, nsym = load_tables()
    lut = symbol_lut(cdf, nsym)
    data = np.frombuffer(blob, np.uint8, offset=pos)
    x, p = rans_init(data, 0)
    nu = int(used.sum())
    seq, x, p = _pop_seq(nu, mean_table, cdf, nsym, lut, x, data, p)
    mean = np.zeros(bands)
    mean[used] = np.cumsum(seq) / 2.0**mean_exp
    basis = np.zeros((bands, k))
    for c, (_, e, pred, table) in enumerate(meta):
        seq, x, p = _pop_seq(nu, table, cdf, nsym, lut, x, data, p)
        basis[used, c] = (np.cumsum(seq) if pred else seq) / 2.0**e
    if p != data.size:
        raise FormatError("spectral stage stream is corrupt (length mismatch)")
    log_std = np.array([m[0] for m in meta], dtype=np.int8)
    basis_exp = np.array([m[1] for m in meta], dtype=np.uint8)
    return SpectralStage(float(step), mean, basis, log_std, used, int(mean_exp), basis_exp)
