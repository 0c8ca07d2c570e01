"""rANS coder and Laplace tables: round trips, edge cases, corrupt streams."""

import numba
import numpy as np
import pytest

from engine.entropy.laplace import (LUT_BITS, N_SCALES, N_TABLES, PROB_SCALE, build_tables, load_tables, pop_residual,
                                    push_residual, scale_of, symbol_lut)
from engine.entropy.rans import RANS_L, rans_advance, rans_encode, rans_init, rans_slot


@numba.njit(cache=True)
def _encode(rs, idx, cdf, nsym):
    st = np.empty(4 * rs.size + 8, np.int64)
    fr = np.empty(4 * rs.size + 8, np.int64)
    n = 0
    for j in range(rs.size):
        n = push_residual(rs[j], idx[j], cdf, nsym, st, fr, n)
    return rans_encode(st, fr, n)


@numba.njit(cache=True)
def _decode(data, idx, cdf, nsym, lut):
    out = np.empty(idx.size, np.int64)
    x, pos = rans_init(data, 0)
    for j in range(idx.size):
        out[j], x, pos = pop_residual(idx[j], cdf, nsym, lut, x, data, pos)
    return out, pos, x


def _round_trip(rs, idx):
    cdf, nsym = load_tables()
    data = _encode(rs, idx, cdf, nsym)
    out, pos, x = _decode(data, idx, cdf, nsym, symbol_lut(cdf, nsym))
    np.testing.assert_array_equal(out, rs)
    assert pos == data.size and x == RANS_L
    return data


def test_shipped_tables_match_their_definition():
    cdf, nsym = build_tables()
    cdf2, nsym2 = load_tables()
    np.testing.assert_array_equal(cdf, cdf2)
    np.testing.assert_array_equal(nsym, nsym2)
    for t in range(N_TABLES):
        f = np.diff(cdf[t, : nsym[t] + 1].astype(np.int64))
        assert f.min() >= 1 and cdf[t, nsym[t]] == PROB_SCALE


def test_round_trip_random_laplace_all_scales():
    rng = np.random.default_rng(1)
    idx = rng.integers(0, N_SCALES, 50000)
    rs = np.round(rng.laplace(0, scale_of(idx))).astype(np.int64)
    data = _round_trip(rs, idx)
    # close to the ideal: a Laplace of the right scale codes near its entropy
    assert data.size < 1.2 * _ideal_bytes(rs, idx) + 16


def _ideal_bytes(rs, idx):
    cdf, nsym = load_tables()
    from engine.entropy.laplace import cost_table, residual_cost

    bits = cost_table(cdf, nsym)
    return sum(residual_cost(int(r), int(i), bits, nsym) for r, i in zip(rs, idx)) / 8


@pytest.mark.parametrize("values", [[0], [2**31 - 1], [-(2**31)], [5, -5, 0, 1000000, -1000000], []])
def test_round_trip_edge_values(values):
    rs = np.array(values, dtype=np.int64)
    for i in (0, N_TABLES - 1, N_TABLES, N_SCALES - 1):
        _round_trip(rs, np.full(rs.size, i, np.int64))


def test_empty_message_is_four_bytes():
    assert rans_encode(np.zeros(1, np.int64), np.ones(1, np.int64), 0).size == 4


def test_uniform_and_certain_symbols():
    # freq 1 (the rarest) and freq 2^16 - 1 symbols in a row
    starts = np.array([0, 65535, 1, 0] * 100, np.int64)
    freqs = np.array([1, 1, 65535, 65535] * 100, np.int64)
    data = rans_encode(starts, freqs, starts.size)
    x, pos = rans_init(data, 0)
    for s, f in zip(starts, freqs):
        slot = rans_slot(x)
        assert s <= slot < s + f
        x, pos = rans_advance(x, data, pos, s, f)
    assert pos == data.size and x == RANS_L


def test_truncated_stream_is_detected_not_crashing():
    rng = np.random.default_rng(2)
    idx = np.full(2000, 20, np.int64)
    rs = np.round(rng.laplace(0, scale_of(idx))).astype(np.int64)
    cdf, nsym = load_tables()
    data = _encode(rs, idx, cdf, nsym)
    out, pos, x = _decode(data[: data.size // 2], idx, cdf, nsym, symbol_lut(cdf, nsym))
    assert pos != data.size // 2 or x != RANS_L
    assert rans_init(data[:3], 0)[1] == -1


def test_symbol_lookup_finds_the_symbol_a_search_of_the_cdf_finds():
    # The decoder's lookup must pick, for every slot of every table, the interval that holds it.
    cdf, nsym = load_tables()
    lut = symbol_lut(cdf, nsym)
    slots = np.arange(PROB_SCALE, dtype=np.int64)
    for t in range(N_TABLES):
        c = cdf[t, : nsym[t] + 1].astype(np.int64)
        want = np.searchsorted(c[:-1], slots, side="right") - 1
        start = lut[t, slots >> (16 - LUT_BITS)].astype(np.int64)
        # the walk moves up from start to the last symbol whose interval begins at or before the slot
        assert (c[start] <= slots).all() and (start <= want).all()
    rng = np.random.default_rng(3)
    idx = rng.integers(0, N_SCALES, 20000)
    _round_trip(np.round(rng.laplace(0, scale_of(idx))).astype(np.int64), idx)
