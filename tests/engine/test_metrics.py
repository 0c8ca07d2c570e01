"""Metrics against plain NumPy/SciPy references, known values, and real EnMAP data when present."""

import math
from pathlib import Path

import numpy as np
import pytest
from scipy.signal import correlate2d

from engine import metrics as m
from engine.errors import InputError

DATA = Path(__file__).resolve().parents[2] / ".." / "shared" / "data" / "hsi"
ENMAP = DATA / "train" / "enmap_potsdam_a.tif"
NODATA = -32768

# --------------------------------------------------------------------------- references


def ref_psnr(ref, rec, valid, data_range=None):
    r, c = ref[valid].astype(np.float64), rec[valid].astype(np.float64)
    peak = data_range if data_range is not None else r.max() - r.min()
    return 10 * np.log10(peak**2 / np.mean((r - c) ** 2))


def ref_psnr_band_peak(ref, rec, valid):
    vals = []
    for b in range(ref.shape[0]):
        r, c = ref[b][valid[b]].astype(np.float64), rec[b][valid[b]].astype(np.float64)
        if r.size and np.any(r != c) and r.max() > 0:
            vals.append(10 * np.log10(r.max() ** 2 / np.mean((r - c) ** 2)))
    return np.mean(vals)


def ref_psnr_per_band(ref, rec, valid):
    out = []
    for b in range(ref.shape[0]):
        r, c = ref[b][valid[b]].astype(np.float64), rec[b][valid[b]].astype(np.float64)
        if not r.size or r.max() <= 0:
            out.append(np.nan)
        elif np.all(r == c):
            out.append(np.inf)
        else:
            out.append(10 * np.log10(r.max() ** 2 / np.mean((r - c) ** 2)))
    return np.array(out)


def ref_ssim(ref, rec, valid, data_range=None):
    r_valid = ref[valid].astype(np.float64)
    L = data_range if data_range is not None else r_valid.max() - r_valid.min()
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    rec = np.where(valid, rec, ref)
    out = []
    for b in range(ref.shape[0]):
        if not valid[b].any():
            continue
        x, y = ref[b].astype(np.float64), rec[b].astype(np.float64)
        sizes = [min(11, n if n % 2 else n - 1) for n in x.shape]
        g = [np.exp(-((np.arange(s) - (s - 1) / 2) ** 2) / (2 * 1.5**2)) for s in sizes]
        win = np.outer(g[0], g[1])
        win /= win.sum()

        def f(a):
            return correlate2d(a, win, mode="valid")

        mx, my = f(x), f(y)
        vx, vy, cxy = f(x * x) - mx**2, f(y * y) - my**2, f(x * y) - mx * my
        smap = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx**2 + my**2 + c1) * (vx + vy + c2))
        out.append(smap.mean())
    return np.mean(out)


def ref_sam_map(ref, rec, valid):
    r = np.where(valid, ref, 0).astype(np.float64)
    c = np.where(valid, rec, 0).astype(np.float64)
    nr, nc = np.sqrt((r * r).sum(0)), np.sqrt((c * c).sum(0))
    with np.errstate(invalid="ignore", divide="ignore"):
        cos = np.clip((r * c).sum(0) / (nr * nc), -1, 1)
        ang = np.degrees(np.arccos(cos))
    ang[(nr == 0) | (nc == 0)] = np.nan
    return ang


def check_all(ref, rec, valid):
    v = np.ones(ref.shape, bool) if valid is None else valid
    np.testing.assert_allclose(m.psnr(ref, rec, valid=valid), ref_psnr(ref, rec, v), rtol=1e-10)
    np.testing.assert_allclose(m.psnr(ref, rec, 255.0, valid), ref_psnr(ref, rec, v, 255.0), rtol=1e-10)
    np.testing.assert_allclose(m.psnr_band_peak(ref, rec, valid), ref_psnr_band_peak(ref, rec, v), rtol=1e-10)
    np.testing.assert_allclose(m.psnr_per_band(ref, rec, valid), ref_psnr_per_band(ref, rec, v), rtol=1e-10)
    np.testing.assert_allclose(m.ssim(ref, rec, valid=valid), ref_ssim(ref, rec, v), rtol=1e-9, atol=1e-12)
    np.testing.assert_allclose(m.sam_map(ref, rec, valid), ref_sam_map(ref, rec, v), rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(m.sam_deg(ref, rec, valid), np.nanmean(ref_sam_map(ref, rec, v)), rtol=1e-9)
    expected_mae = np.abs(ref.astype(np.float64) - rec.astype(np.float64))[v].max()
    assert m.max_abs_error(ref, rec, valid) == expected_mae


# --------------------------------------------------------------------------- random data


@pytest.mark.parametrize("shape", [(3, 20, 17), (2, 8, 5), (1, 1, 1), (4, 2, 30), (2, 11, 12)])
@pytest.mark.parametrize("masked", [False, True])
def test_random_against_reference(shape, masked):
    rng = np.random.default_rng(sum(shape))
    ref = rng.uniform(0, 100, shape).astype(np.float32)
    rec = ref + rng.normal(0, 3, shape).astype(np.float32)
    valid = rng.random(shape) > 0.2 if masked else None
    if masked:
        valid.flat[0] = True  # at least one valid sample
        if shape[0] > 1:
            valid[-1] = False  # a fully invalid band must be skipped
    if shape == (1, 1, 1):
        with pytest.raises(InputError, match="constant"):
            m.psnr(ref, rec, valid=valid)  # no default range from one sample
        v = np.ones(shape, bool)
        np.testing.assert_allclose(m.ssim(ref, rec, 100.0, valid), ref_ssim(ref, rec, v, 100.0), rtol=1e-9)
        return
    check_all(ref, rec, valid)


def test_mixed_integer_dtypes():
    rng = np.random.default_rng(1)
    ref = rng.integers(0, 4000, (3, 16, 16)).astype(np.int16)
    rec = (ref + rng.integers(-20, 20, ref.shape)).astype(np.float64)
    check_all(ref, rec, None)
    check_all(ref.astype(np.uint16), rec.astype(np.float32), ref > 100)


# --------------------------------------------------------------------------- known values


def test_known_values():
    ref = np.zeros((2, 4, 4))
    ref[0, 0, 0] = 10.0  # range 10
    rec = ref + 1.0  # MSE 1
    assert m.psnr(ref, rec) == pytest.approx(20.0)
    assert m.psnr(ref, rec, data_range=100.0) == pytest.approx(40.0)
    assert m.psnr(ref, ref.copy()) == math.inf
    assert m.psnr_band_peak(ref, ref) == math.inf
    assert m.ssim(ref, ref) == pytest.approx(1.0)
    assert m.max_abs_error(ref, rec) == 1.0
    # band 1 perfect -> skipped; band 0 peak 10, MSE 1 -> 20 dB
    rec2 = ref.copy()
    rec2[0] += 1.0
    assert m.psnr_band_peak(ref, rec2) == pytest.approx(20.0)
    # band 1 has peak 0 (all zero): PSNR_b undefined, skipped rather than -inf
    assert m.psnr_band_peak(ref, rec) == pytest.approx(20.0)

    a = np.array([1.0, 0.0, 0.0]).reshape(3, 1, 1)
    b = np.array([0.0, 2.0, 0.0]).reshape(3, 1, 1)
    assert m.sam_deg(a, b) == pytest.approx(90.0)
    assert m.sam_deg(a, -a) == pytest.approx(180.0)
    assert m.sam_deg(a, 3 * a) == pytest.approx(0.0, abs=1e-12)
    assert math.isnan(m.sam_deg(a, np.zeros_like(a)))  # zero-norm pixel skipped
    # mask leaves only band 1 at the pixel: both spectra then parallel
    c = np.array([5.0, 2.0, 0.0]).reshape(3, 1, 1)
    assert m.sam_deg(c, b, valid=np.array([False, True, True]).reshape(3, 1, 1)) == pytest.approx(0.0)

    assert m.bpppc(1000, 10, 10, 8) == 10.0
    assert m.compression_ratio(1000, 10, 10, 8, np.int16) == 1.6
    assert m.compression_ratio(1000, 10, 10, 8, "float32") == 3.2


def test_validation():
    x = np.zeros((2, 3, 4))
    for bad in [
        lambda: m.psnr(x, np.zeros((2, 3, 5))),
        lambda: m.psnr(x[0], x[0]),
        lambda: m.psnr(x, x, valid=np.ones((2, 3, 4), np.uint8)),
        lambda: m.psnr(x, x + 1, valid=np.zeros(x.shape, bool)),
        lambda: m.psnr(x, x + 1, data_range=-1.0),
        lambda: m.ssim(x, x.astype(np.complex128)),
        lambda: m.bpppc(0, 1, 1, 1),
        lambda: m.bpppc(10, 1, 1.5, 1),
        lambda: m.compression_ratio(10, 1, 1, 1, "nonsense"),
    ]:
        with pytest.raises(InputError):
            bad()
    with pytest.raises(InputError, match="-1"):
        m.bpppc(1, -1, 1, 1)


# --------------------------------------------------------------------------- real data


@pytest.fixture(scope="module")
def enmap():
    if not ENMAP.exists():
        pytest.skip(f"real EnMAP scene not found at {ENMAP}")
    gdal = pytest.importorskip("osgeo.gdal", reason="GDAL Python bindings not installed")
    ds = gdal.Open(str(ENMAP))  # keep ds alive while reading (GDAL 3.6 segfaults otherwise)
    cube = ds.ReadAsArray()
    ds = None
    return cube


def test_enmap_against_reference(enmap):
    ref = enmap
    valid = ref != NODATA
    assert not valid.all(), "expected nodata bands in the EnMAP sample"
    rng = np.random.default_rng(7)
    rec = (ref + rng.normal(0, 25, ref.shape)).astype(np.float32)
    rec[~valid] = 0  # garbage where nodata: must not matter
    check_all(ref, rec, valid)
    # sprinkle spatial nodata too, so pixels have differing valid band sets
    valid2 = valid & (rng.random(ref.shape) > 0.05)
    check_all(ref, rec, valid2)
    # plausibility: noise of sigma 25 on a range of ~1e4
    assert 40 < m.psnr(ref, rec, valid=valid) < 60
    assert 0 < m.sam_deg(ref, rec, valid) < 10


def test_psnr_per_band_special_bands():
    """Per band, against the reference: a perfect band is inf, a band without valid samples or with no
    positive peak is NaN, and the finite terms average to psnr_band_peak."""
    rng = np.random.default_rng(7)
    ref = rng.uniform(1, 50, (5, 6, 4))
    rec = ref + rng.normal(0, 1, ref.shape)
    rec[1] = ref[1]                     # perfect
    ref[2] = -3.0                       # no positive peak
    valid = np.ones(ref.shape, bool)
    valid[3] = False                    # no valid sample
    got = m.psnr_per_band(ref, rec, valid)
    np.testing.assert_allclose(got, ref_psnr_per_band(ref, rec, valid), rtol=1e-10)
    assert got[1] == np.inf and np.isnan(got[2]) and np.isnan(got[3]) and np.isfinite(got[[0, 4]]).all()
    assert np.mean(got[[0, 4]]) == pytest.approx(m.psnr_band_peak(ref, rec, valid))
