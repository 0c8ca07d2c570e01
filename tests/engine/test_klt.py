"""Streaming scene KLT and its side information."""

import numpy as np
import pytest

from engine.errors import FormatError, InputError
from engine.klt import KLTAccumulator, SpectralStage, fit_klt, make_stage


def _cube(bands, rows=40, cols=36, rank=5, seed=0):
    rng = np.random.default_rng(seed)
    spectra = rng.random((bands, rank))
    abund = rng.random((rank, rows, cols))
    return (np.einsum("br,rhw->bhw", spectra, abund) / rank + 0.01 * rng.standard_normal((bands, rows, cols))
            ).astype(np.float32)


def _tiles(x, valid, t):
    for a in range(0, x.shape[1], t):
        for b in range(0, x.shape[2], t):
            yield x[:, a:a + t, b:b + t], None if valid is None else valid[:, a:a + t, b:b + t]


def test_streaming_equals_in_memory():
    x = _cube(30)
    mean, basis, var, used = fit_klt(_tiles(x, None, 16), 30)
    flat = x.reshape(30, -1).astype(np.float64)
    ref_mean = flat.mean(axis=1)
    ref_var, ref_vec = np.linalg.eigh(np.cov(flat, bias=True))
    np.testing.assert_allclose(mean, ref_mean, atol=1e-12)
    np.testing.assert_allclose(var, ref_var[::-1], rtol=1e-9, atol=1e-12)
    for c in range(5):  # leading vectors agree up to sign
        assert abs(abs(basis[:, c] @ ref_vec[:, ::-1][:, c]) - 1) < 1e-9
    assert used.all()


def test_all_nodata_bands_are_left_out():
    x = _cube(12)
    valid = np.ones(x.shape, bool)
    valid[[3, 7]] = False
    x[[3, 7]] = 0.5  # filled values must not enter the transform
    mean, basis, var, used = fit_klt(_tiles(x, valid, 16), 12)
    assert not used[[3, 7]].any() and used.sum() == 10
    assert np.all(basis[[3, 7]] == 0) and np.all(mean[[3, 7]] == 0)
    assert var[-2:].max() < 1e-12


def test_pixels_with_no_valid_band_are_skipped():
    x = _cube(6)
    valid = np.ones(x.shape, bool)
    valid[:, :5] = False
    x[:, :5] = 100.0
    mean = fit_klt([(x, valid)], 6)[0]
    np.testing.assert_allclose(mean, x[:, 5:].reshape(6, -1).mean(axis=1), atol=1e-6)


@pytest.mark.parametrize("bands, k", [(1, 1), (425, 12), (30, 30), (30, 0)])
def test_stage_bytes_round_trip(bands, k):
    x = _cube(bands, 20, 20)
    mean, basis, var, used = fit_klt([(x, None)], bands)
    st = make_stage(mean, basis, var, used, 0.003, k)
    back = SpectralStage.from_bytes(st.to_bytes())
    np.testing.assert_array_equal(back.mean, st.mean)
    np.testing.assert_array_equal(back.basis, st.basis)
    np.testing.assert_array_equal(back.log_std, st.log_std)
    np.testing.assert_array_equal(back.used, st.used)
    assert back.step == st.step and back.k == k


def test_stage_is_much_smaller_than_float16():
    x = _cube(200, 30, 30, rank=8)
    mean, basis, var, used = fit_klt([(x, None)], 200)
    st = make_stage(mean, basis, var, used, 0.01, 8)
    assert len(st.to_bytes()) < 0.6 * (200 * 8 * 2 + 200 * 4)


def test_stage_corruption_raises_format_error():
    x = _cube(20, 10, 10)
    st = make_stage(*fit_klt([(x, None)], 20)[:3], np.ones(20, bool), 0.01, 4)
    blob = st.to_bytes()
    for bad in (blob[:5], blob[:-3], b"\x09" + blob[1:]):
        with pytest.raises(FormatError):
            SpectralStage.from_bytes(bad)


def test_accumulator_rejects_bad_input():
    with pytest.raises(InputError):
        KLTAccumulator(0)
    acc = KLTAccumulator(3)
    with pytest.raises(InputError):
        acc.add(np.zeros((4, 2, 2), np.float32))
    with pytest.raises(InputError):
        acc.klt()
