"""BD-rate against worked examples computed by hand."""

import math

import numpy as np
import pytest

from engine.bdrate import bd_rate, overlap
from engine.errors import InputError


def test_half_the_rate_everywhere_is_minus_50_percent():
    # The test codec needs exactly half the anchor's rate at every PSNR: log10 of the rate ratio is
    # log10(0.5) at every D, so its mean over the shared range is log10(0.5) and BD-rate = 0.5 - 1 = -50 %.
    psnr = [30.0, 33.0, 36.0, 39.0]
    anchor = [0.25, 0.5, 1.0, 2.0]
    test = [r / 2 for r in anchor]
    assert bd_rate(anchor, psnr, test, psnr) == pytest.approx(-50.0, abs=1e-9)
    assert bd_rate(test, psnr, anchor, psnr) == pytest.approx(100.0, abs=1e-9)  # and the other way round


def test_worked_example_with_different_slopes_and_partial_overlap():
    # Anchor: log10 R = 0.1 (D - 30), points at D = 30..40.  Test: log10 R = 0.05 (D - 30), D = 35..45.
    # Both are straight lines, so the cubic fits reproduce them exactly. Shared range [35, 40].
    # Difference of log rates: 0.05 (D - 30) - 0.1 (D - 30) = -0.05 (D - 30).
    # Its mean over [35, 40]: -0.05 * mean(D - 30) = -0.05 * 7.5 = -0.375.
    # BD-rate = 10 ** -0.375 - 1 = 0.42170 - 1 = -57.830 %.
    da = np.arange(30.0, 41.0, 2.0)
    dt = np.arange(35.0, 46.0, 2.0)
    ra = 10 ** (0.1 * (da - 30))
    rt = 10 ** (0.05 * (dt - 30))
    assert bd_rate(ra, da, rt, dt) == pytest.approx(-57.830, abs=1e-3)
    assert overlap(da, dt) == (35.0, 40.0)  # anchor points 30, 32, ..., 40; test points 35, 37, ..., 45


def test_sam_where_lower_is_better():
    # SAM falls as rate grows; the test codec reaches each SAM at 0.8 x the anchor's rate: -20 %.
    sam = [4.0, 3.0, 2.0, 1.5, 1.0]
    anchor = [0.1, 0.2, 0.4, 0.6, 1.0]
    assert bd_rate(anchor, sam, [0.8 * r for r in anchor], sam) == pytest.approx(-20.0, abs=1e-9)


def test_no_overlap_is_nan_and_bad_curves_raise():
    assert math.isnan(bd_rate([0.1, 0.2], [20, 25], [0.1, 0.2], [30, 35]))
    assert overlap([20, 25], [30, 35]) is None
    with pytest.raises(InputError, match="at least 2 points"):
        bd_rate([0.1], [20], [0.1, 0.2], [20, 25])
    # A lossless point (inf dB) is dropped, leaving one usable point.
    with pytest.raises(InputError, match="at least 2 points"):
        bd_rate([0.1, 4.0], [20, math.inf], [0.1, 0.2], [20, 25])
    with pytest.raises(InputError, match="rates but"):
        bd_rate([0.1, 0.2], [20], [0.1, 0.2], [20, 25])
