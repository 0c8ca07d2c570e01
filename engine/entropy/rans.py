"""A byte-wise rANS coder with static frequency tables (Duda 2013; the layout of ryg_rans).

32-bit state kept in [L, 256 L) with L = 2^23, probabilities in units of 2^-16 (``PROB_BITS``), one byte
out or in per renormalisation step. The encoder takes the whole message as (start, freq) pairs and codes
it in reverse so that the decoder reads forward; the decoder is a small state machine the context models
drive symbol by symbol (their tables depend on what was decoded before).

Stream layout: the final encoder state (4 bytes, little-endian) followed by the renormalisation bytes
in decoding order.
"""

from __future__ import annotations

import numba
import numpy as np

PROB_BITS = 16
PROB_SCALE = 1 << PROB_BITS
RANS_L = 1 << 23


@numba.njit(cache=True)
def rans_encode(starts, freqs, n):
    """Bytes (uint8 array) coding the first ``n`` (start, freq) pairs; every freq in [1, 2^16]."""
    buf = np.empty(4 * n + 16, dtype=np.uint8)  # a symbol never emits more than 2 bytes (freq >= 1)
    pos = buf.size
    x = np.uint64(RANS_L)
    for i in range(n - 1, -1, -1):
        f = np.uint64(freqs[i])
        x_max = np.uint64(((RANS_L >> PROB_BITS) << 8)) * f
        while x >= x_max:
            pos -= 1
            buf[pos] = np.uint8(x & np.uint64(0xFF))
            x >>= np.uint64(8)
        x = ((x // f) << np.uint64(PROB_BITS)) + (x % f) + np.uint64(starts[i])
    for _ in range(4):  # the state, little-endian, read first by the decoder
        pos -= 1
        buf[pos] = np.uint8(0)
    v = x
    for j in range(4):
        buf[pos + j] = np.uint8(v & np.uint64(0xFF))
        v >>= np.uint64(8)
    return buf[pos:].copy()


@numba.njit(cache=True)
def rans_init(data, pos):
    """(state, next position) after reading the 4-byte initial state at ``pos``; (0, -1) if truncated."""
    if pos + 4 > data.size:
        return np.uint64(0), -1
    x = np.uint64(0)
    for j in range(4):
        x |= np.uint64(data[pos + j]) << np.uint64(8 * j)
    return x, pos + 4


@numba.njit(cache=True)
def rans_slot(x):
    """The cumulative-frequency slot the next symbol's interval must contain."""
    return np.int64(x & np.uint64(PROB_SCALE - 1))


@numba.njit(cache=True, inline='always')
def rans_advance(x, data, pos, start, freq):
    """Consume the symbol (start, freq) and renormalise; returns (state, position). Past the end reads zeros."""
    x = np.uint64(freq) * (x >> np.uint64(PROB_BITS)) + np.uint64(rans_slot(x) - start)
    while x < np.uint64(RANS_L):
        b = data[pos] if pos < data.size else np.uint8(0)
        x = (x << np.uint64(8)) | np.uint64(b)
        pos += 1
    return x, pos
