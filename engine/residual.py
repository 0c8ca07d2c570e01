"""Error-bounded coding: a quantised, entropy-coded residual on top of the learned reconstruction.

With ``max_abs_error`` E the decoder's output differs from the source by at most E on every valid
sample, in source units and type (E = 0: lossless, bit-exact for floats too). The encoder decodes its
own learned tile exactly as the decoder will (``P``) and codes, band after band, what is left:

* band b is predicted from the learned ``P_b`` and ``P_{b-1}`` and the previous band's decoded values
  (closed loop: the decoder has them) with three least-squares weights per band, since hyperspectral
  bands are strongly correlated and the learned reconstruction alone is a poor predictor (see
  docs/benchmarks/error_bounded.md);
* integer types: the rest ``r`` is quantised near-losslessly, ``q = sign(r) floor((|r| + e) / (2e + 1))``
  with ``e = floor(E)``, the decoder outputs ``clip(prediction + q (2e + 1))``, within e of x;
* floats, E > 0: ``q = rint(r / 2E)`` in float64, output rounded to the float type;
* floats, E = 0: the same in the integers that order the floats' bit patterns, step 1: bit-exact.

The encoder then checks the decoder's exact output (after clipping, rounding and the rule that a valid
sample never takes the nodata value) and stores the samples still outside the bound as exact exceptions:
the bound never rests on an argument about rounding.

``q`` minus a per-band centre is split into a high part, entropy coded with compressai's rANS coder
under a two-sided geometric model (one of :data:`N_MODELS`, chosen per band; out-of-range values are
escaped by the coder's bypass mode) and ``shift`` raw low bits (wide residuals: float sources). The
models are built with integer arithmetic only, so encoder and decoder derive the same tables anywhere.

The section's byte layout is :mod:`engine.format.residual`'s.
"""

from __future__ import annotations

import math
import numbers
import struct
import zlib

import numpy as np

from engine.codecs.learned import guarded_string
from engine.errors import CodecError, FormatError, InputError
from engine.format import residual as section

PRECISION = 16  # compressai's rANS works with 16-bit CDFs
HALF_WIDTH = 127  # symbols -127..127 per model, larger high parts escape (bypass coding)
MAX_SHIFT = 63
_HI_BITS = 29  # |high part| < 2^29 fits compressai's int32 symbols (its bypass codes 2|v|)


def _decays() -> list[int]:
    """Geometric decay factors theta * 2^16, from near 0 (all mass at 0) to mean |k| ~ 30."""
    b, out = 65504, []
    while b > 2000:
        out.append(65536 - b)
        b = b * 9 // 10
    return out


DECAYS = _decays()
N_MODELS = len(DECAYS)


def _model_cdf(decay: int) -> list[int]:
    """CDF (compressai layout: symbols -K..K, then the escape) of a two-sided geometric law, integers only."""
    k = HALF_WIDTH
    w = [1 << 40]
    for _ in range(k + 1):
        w.append(w[-1] * decay >> 16)
    escape = 2 * w[k + 1] * 65536 // (65536 - decay) + 1
    weights = [w[abs(i)] for i in range(-k, k + 1)] + [escape]
    n = len(weights)
    total = sum(weights)
    freq = [1 + wi * ((1 << PRECISION) - n) // total for wi in weights]
    freq[k] += (1 << PRECISION) - sum(freq)  # rounding leftovers to the mode
    cdf = [0]
    for f in freq:
        cdf.append(cdf[-1] + f)
    return cdf


CDFS = [_model_cdf(d) for d in DECAYS]
# Code length in bits per symbol (index 0..2K) and escape, for choosing a model (encoder only).
_BITS = np.array([[PRECISION - math.log2(c[i + 1] - c[i]) for i in range(len(c) - 1)] for c in CDFS])


def check_max_abs_error(value) -> float | None:
    """``value`` as a float (None: off); InputError unless a finite number >= 0."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value < 0:
        raise InputError(f"max_abs_error must be a finite number >= 0, got {value!r}")
    return float(value)


# ---------------------------------------------------------------------------------------------
# Quantisation after a closed-loop prediction from the previous band
# ---------------------------------------------------------------------------------------------

def _ordered(a: np.ndarray) -> np.ndarray:
    """Float bit patterns as signed integers in the order of the floats (an involution on the patterns)."""
    i = a.view(np.int32 if a.dtype.itemsize == 4 else np.int64).astype(np.int64)
    mask = np.int64(0x7FFFFFFF if a.dtype.itemsize == 4 else 0x7FFFFFFFFFFFFFFF)
    return i ^ ((i >> 63) & mask) if a.dtype.itemsize == 8 else i ^ ((i >> 31) & mask)


def _from_ordered(o: np.ndarray, dtype: np.dtype) -> np.ndarray:
    if dtype.itemsize == 4:
        o = o.astype(np.int32)  # wraps modulo 2^32, as the encoder's difference did
        return (o ^ ((o >> 31) & np.int32(0x7FFFFFFF))).view(dtype)
    return (o ^ ((o >> 63) & np.int64(0x7FFFFFFFFFFFFFFF))).view(dtype)


class _Domain:
    """Where residuals are taken: integers (integer sources; float bit patterns when e = 0) or float64."""

    def __init__(self, dtype: np.dtype, e: float):
        self.dtype, self.e = dtype, e
        self.exact_int = dtype.kind in "iu" or e == 0
        self.step = 2 * int(e) + 1 if dtype.kind in "iu" else 1 if e == 0 else 2 * e

    def encode(self, a: np.ndarray) -> np.ndarray:
        if self.dtype.kind in "iu":
            return a.astype(np.int64)
        return _ordered(a) if self.e == 0 else a.astype(np.float64)

    def decode(self, v: np.ndarray) -> np.ndarray:
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            return np.clip(v, info.min, info.max).astype(self.dtype)
        with np.errstate(over="ignore", invalid="ignore"):
            return _from_ordered(v, self.dtype) if self.e == 0 else v.astype(self.dtype)

    def quantise(self, r: np.ndarray) -> np.ndarray:
        if self.dtype.kind in "iu":
            e = int(self.e)
            return np.sign(r) * ((np.abs(r) + e) // self.step)
        if self.e == 0:
            return r
        with np.errstate(invalid="ignore", over="ignore"):
            q = np.rint(r / self.step)
        q[~np.isfinite(q) | (np.abs(q) >= 2.0 ** 62)] = 0  # such samples end up as exceptions
        return q.astype(np.int64)

    def value(self, pred: np.ndarray, q: np.ndarray) -> np.ndarray:
        """The decoded value in the domain; clipped to the type's range for integer sources."""
        if self.dtype.kind in "iu":
            info = np.iinfo(self.dtype)
            return np.clip(pred + q * self.step, info.min, info.max)  # |q| < 2^33: no overflow
        if self.e == 0:
            return pred + q  # modulo 2^64, exactly the encoder's pattern
        return pred + q.astype(np.float64) * self.step


WEIGHT_BITS = 10  # prediction weights are int16 in units of 2^-10


def _weights(y: np.ndarray, regressors: list[np.ndarray]) -> tuple[int, int, int]:
    """Least-squares weights (x 2^10, int16) of the regressors for ``y`` (encoder only; stored per band)."""
    a = np.stack([r.astype(np.float64) for r in regressors], axis=1)
    y = y.astype(np.float64)
    default = (0, 1 << WEIGHT_BITS, 0)  # the learned reconstruction alone
    if y.size < 3 or not (np.isfinite(a).all() and np.isfinite(y).all()):
        return default
    try:
        w = np.linalg.lstsq(a, y, rcond=None)[0]
    except np.linalg.LinAlgError:
        return default
    if not np.isfinite(w).all():
        return default
    return tuple(int(v) for v in np.clip(np.rint(w * (1 << WEIGHT_BITS)), -32768, 32767))


def _run(dom: _Domain, base: np.ndarray, valid: np.ndarray, x: np.ndarray | None, q: np.ndarray | None,
         weights: list[tuple[int, int, int]] | None) -> tuple[np.ndarray, np.ndarray, list]:
    """Band by band, the decoded values; the encoder passes ``x`` (and gets q, weights), the decoder q and weights.

    Band b is predicted from the previous band's decoded values ``v_{b-1}`` and the learned reconstruction
    of bands b and b-1: ``(w1 v_{b-1} + w2 P_b + w3 P_{b-1}) / 2^10``, in integer arithmetic where the
    domain is integer (any machine computes the same), else in IEEE float64 operations in this order.
    ``base``, ``valid``, ``x``: (bands, pixels) in the domain; ``q``: (bands, pixels), 0 where invalid.
    """
    bands = base.shape[0]
    v = np.empty_like(base)
    if not dom.exact_int:  # NaN (invalid) or infinite learned samples must not poison predictions
        with np.errstate(invalid="ignore"):
            base = np.where(np.isfinite(base), base, 0.0)
    zero = np.zeros_like(base[0])
    v_prev, p_prev = zero, zero
    if x is not None:
        q, weights = np.zeros(base.shape, np.int64), []
    for b in range(bands):
        if x is not None:
            m = valid[b]
            weights.append(_weights(x[b][m], [v_prev[m], base[b][m], p_prev[m]]))
        w1, w2, w3 = weights[b]
        with np.errstate(invalid="ignore", over="ignore"):
            if dom.exact_int:  # wraps modulo 2^64 like the decoder for float64 bit patterns
                pred = (w1 * v_prev + w2 * base[b] + w3 * p_prev + (1 << (WEIGHT_BITS - 1))) >> WEIGHT_BITS
            else:
                pred = (w1 * v_prev + w2 * base[b] + w3 * p_prev) / float(1 << WEIGHT_BITS)
            if x is not None:
                q[b] = np.where(valid[b], dom.quantise(x[b] - pred), 0)
            v[b] = dom.value(pred, q[b])
        cur = v[b] if dom.exact_int else np.where(np.isfinite(v[b]), v[b], 0.0)  # an overflow is an exception
        v_prev, p_prev = np.where(valid[b], cur, 0), base[b]
    return v, q, weights


def within_bound(x: np.ndarray, rec: np.ndarray, e: float) -> np.ndarray:
    """True where ``rec`` is within ``e`` of ``x`` (bit-exact for floats when e = 0)."""
    if x.dtype.kind in "iu":
        return np.abs(x.astype(np.int64) - rec.astype(np.int64)) <= int(e)
    if e == 0:
        u = np.uint32 if x.dtype.itemsize == 4 else np.uint64
        return x.view(u) == rec.view(u)
    with np.errstate(invalid="ignore", over="ignore"):
        return (x == rec) | (np.abs(x.astype(np.float64) - rec.astype(np.float64)) <= e)


# ---------------------------------------------------------------------------------------------
# Entropy coding of q
# ---------------------------------------------------------------------------------------------

def _choose(q: np.ndarray) -> tuple[int, int]:
    """(model, shift) for one band's q: the smallest estimated size (rANS bits + raw low bits)."""
    if q.size == 0:
        return 0, 0
    top = max(int(q.max()), -int(q.min()))  # Python ints: q may hold -2^63 (float64 bit differences)
    need = max(0, top.bit_length() - _HI_BITS)  # high parts must fit the coder's symbols
    m = float(np.abs(q.astype(np.float64)).mean())
    guess = max(need, int(math.log2(m)) - 2 if m >= 8 else 0)
    best = None
    for shift in sorted({max(need, guess + d) for d in (-1, 0, 1, 2)} | {need}):
        if shift > MAX_SHIFT:
            continue
        hi = q >> shift
        inside = np.abs(hi) <= HALF_WIDTH
        counts = np.bincount(hi[inside] + HALF_WIDTH, minlength=2 * HALF_WIDTH + 1)
        out = hi[~inside]
        esc_bits = float(np.sum(2 * np.log2(np.abs(out) + 1) + 8)) if out.size else 0.0
        cost = _BITS[:, :-1] @ counts + _BITS[:, -1] * out.size + esc_bits + shift * q.size
        model = int(np.argmin(cost))
        if best is None or cost[model] < best[0]:
            best = (cost[model], model, shift)
    return best[1], best[2]


def _groups(counts: list[int], size: int = 1 << 20) -> list[tuple[int, int]]:
    """Ranges [a, b) of bands coded as one rANS string: whole bands, at least ``size`` samples (but the last)."""
    out, a, total = [], 0, 0
    for b, c in enumerate(counts):
        total += c
        if total >= size:
            out.append((a, b + 1))
            a, total = b + 1, 0
    if total:
        out.append((a, len(counts)))
    return out


def encode_q(q_bands: list[np.ndarray], weights: list[tuple[int, int, int]]) -> tuple[list[tuple], bytes, bytes]:
    """(band parameters, packed rANS strings, low bits) for per-band q arrays (valid samples); see the
    module doc."""
    from compressai.ans import RansEncoder

    params, symbols, indexes, low = [], [], [], []
    for q, w in zip(q_bands, weights):
        centre = int(np.clip(np.median(q), -2.0 ** 62, 2.0 ** 62)) if q.size else 0
        with np.errstate(over="ignore"):
            q = q - centre  # modulo 2^64 like the decoder's sum
        model, shift = _choose(q)
        params.append((*w, model, shift, centre))
        hi = q >> shift
        symbols.append(hi)
        indexes.append(np.full(hi.size, model, dtype=np.int64))
        if shift:
            low.append(((q - (hi << shift)).view(np.uint64), shift))
    strings = []
    for a, b in _groups([s.size for s in symbols]):  # bounded lists: Python ints cost ~36 bytes each
        sym, idx = np.concatenate(symbols[a:b]), np.concatenate(indexes[a:b])
        s = RansEncoder().encode_with_indexes(sym.tolist(), idx.tolist(), CDFS, [len(c) for c in CDFS],
                                              [-HALF_WIDTH] * N_MODELS)
        strings.append(s)
    return params, section.pack_strings(strings), section.pack_low_bits(low)


def decode_q(params: list[tuple], string: bytes, packed: bytes,
             counts: list[int]) -> list[np.ndarray]:
    """Inverse of :func:`encode_q` for bands of ``counts`` valid samples; FormatError if inconsistent."""
    from compressai.ans import RansDecoder

    models, shifts, centres = [p[3] for p in params], [p[4] for p in params], [p[5] for p in params]
    if any(m >= N_MODELS for m in models) or any(s > MAX_SHIFT for s in shifts):
        raise FormatError("residual section names an unknown model or shift")
    lows = section.unpack_low_bits(packed, counts, shifts)
    groups = _groups(counts)
    his = []
    for (a, b), s in zip(groups, section.unpack_strings(string, len(groups))):
        m = sum(counts[a:b])
        idx = np.repeat(np.array(models[a:b], dtype=np.int64), counts[a:b]).tolist()
        his.append(np.asarray(RansDecoder().decode_with_indexes(
            guarded_string(s, m), idx, CDFS, [len(c) for c in CDFS], [-HALF_WIDTH] * N_MODELS), dtype=np.int64))
    hi = np.concatenate(his) if his else np.zeros(0, np.int64)
    out, pos = [], 0
    for c, s, centre, lo in zip(counts, shifts, centres, lows):
        h = hi[pos:pos + c]
        pos += c
        with np.errstate(over="ignore"):
            if s:
                h = (h << s) + lo
            out.append(h + np.int64(centre))
    return out


# ---------------------------------------------------------------------------------------------
# The section
# ---------------------------------------------------------------------------------------------

def _crc(pred: np.ndarray) -> int:
    return zlib.crc32(np.ascontiguousarray(pred).tobytes())


def _flat(a: np.ndarray) -> np.ndarray:
    return a.reshape(a.shape[0], -1)


def encode_section(raw: np.ndarray, pred: np.ndarray, valid: np.ndarray, e: float, finish) -> bytes:
    """The residual section for tile ``raw`` (bands, h, w) given the decoder's learned tile ``pred``.

    ``finish(rec)`` applies what the decoder applies after the residual (nodata rule, masks), in place.
    """
    x = np.ascontiguousarray(raw, dtype=pred.dtype)
    dom = _Domain(pred.dtype, e)
    v, q, weights = _run(dom, dom.encode(_flat(pred)), _flat(valid), dom.encode(_flat(x)), None, None)
    vb = _flat(valid)
    params, string, packed = encode_q([q[b][vb[b]] for b in range(q.shape[0])], weights)
    rec = dom.decode(v).reshape(pred.shape)
    finish(rec)
    where = np.flatnonzero(valid & ~within_bound(x, rec, e))
    return section.pack_section(_crc(pred), params, string, packed, where, x.reshape(-1)[where])


def decode_section(data: bytes, pred: np.ndarray, valid: np.ndarray, e: float, finish) -> np.ndarray:
    """The error-bounded tile from the learned tile ``pred`` and a section written by :func:`encode_section`."""
    bands = valid.shape[0]
    crc, params, string, packed, where, values = section.unpack_section(data, bands, pred.dtype, pred.size)
    if _crc(pred) != crc:
        # Other hardware or libraries rounded the network's arithmetic differently: the bound would not hold.
        raise CodecError("the learned reconstruction differs from the encoder's (a damaged tile, or this "
                         "machine's arithmetic differs), so the file's error bound cannot be guaranteed here; "
                         "decode it with the HSIC, torch and CPU type it was written with")
    vb = _flat(valid)
    try:
        qs = decode_q(params, string, packed, vb.sum(axis=1).tolist())
    except (ValueError, RuntimeError, OverflowError, struct.error) as err:
        raise FormatError(f"corrupt residual section: {type(err).__name__}: {err}") from None
    q = np.zeros(vb.shape, np.int64)
    for b in range(bands):
        q[b][vb[b]] = qs[b]
    dom = _Domain(pred.dtype, e)
    v, _, _ = _run(dom, dom.encode(_flat(pred)), vb, None, q, [p[:3] for p in params])
    rec = np.ascontiguousarray(dom.decode(v).reshape(pred.shape))  # C order: flat indices below
    finish(rec)
    rec.reshape(-1)[where] = values
    return rec
