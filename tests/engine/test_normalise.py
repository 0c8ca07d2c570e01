"""The normalisation's Numba kernel gives numpy's float64 expression's float32 values to the last bit."""

import numpy as np
import pytest

from engine.normalise import scaled


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint16, np.int32, np.float32, np.float64])
def test_scaled_equals_the_float64_expression_bit_for_bit(dtype):
    rng = np.random.default_rng(3)
    if np.dtype(dtype).kind == "f":
        raw = (rng.standard_normal((5, 17, 13)) * 1e3).astype(dtype)
        raw[1, 2, 3] = np.nan
    else:
        info = np.iinfo(dtype)
        raw = rng.integers(info.min, info.max, (5, 17, 13), endpoint=True).astype(dtype)
    offset, scale = rng.standard_normal(5) * 100, rng.random(5) * 1e4 + 0.1
    want = ((raw.astype(np.float64) - offset[:, None, None]) / scale[:, None, None]).astype(np.float32)
    got = scaled(raw, offset, scale)
    assert got.dtype == np.float32 and np.array_equal(want.view(np.uint32), got.view(np.uint32))


def test_scaled_takes_either_byte_order():
    raw = np.arange(24, dtype=">i2").reshape(2, 3, 4)
    want = scaled(raw.astype("<i2"), np.zeros(2), np.full(2, 3.0))
    assert np.array_equal(scaled(raw, np.zeros(2), np.full(2, 3.0)), want) and want[1, 2, 3] == np.float32(23 / 3)
