"""Rate control: the search over qualities (with fake trials) and real encodes against targets."""

import math
import os

import numpy as np
import pytest

from engine import metrics
from engine.errors import InputError
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
from engine.rate_control import (RATE_TOLERANCE, Target, TargetNotMetError, Trial, choose_quality, choose_step,
                                 compress_to_target, measure_tiles, step_for_rate)


class Fake:
    """Trials from a table {quality: (bpppc, worst tile PSNR, worst tile SAM)}, recording calls."""

    def __init__(self, table):
        self.table, self.calls = table, []

    def __call__(self, q):
        self.calls.append(q)
        return Trial(q, *self.table[q])


TABLE = {1: (0.3, 30.0, 6.0), 2: (0.8, 33.0, 4.0), 3: (1.4, 34.0, 4.5), 4: (2.0, 36.0, 3.0)}


def test_rate_target_bisects_to_the_best_quality_that_fits():
    fake = Fake(TABLE)
    assert choose_quality([1, 2, 3, 4], fake, Target(bpppc=1.5))[0] == 3
    assert len(fake.calls) < 4  # bisection: q2 fits, q3 fits, q4 does not (3 trials)
    assert choose_quality([4, 3, 2, 1], Fake(TABLE), Target(bpppc=0.3))[0] == 1  # equal to the target fits
    assert choose_quality([1, 2, 3, 4], Fake(TABLE), Target(bpppc=9))[0] == 4


def test_quality_targets_pick_the_cheapest_quality_meeting_every_tile():
    assert choose_quality([1, 2, 3, 4], Fake(TABLE), Target(min_psnr=33.0))[0] == 2
    # SAM is not monotone in quality here (q3 is worse than q2): the cheapest that meets it is still found.
    fake = Fake(TABLE)
    assert choose_quality([1, 2, 3, 4], fake, Target(max_sam=4.2))[0] == 2
    assert fake.calls == [1, 2]  # stops at the first (cheapest) quality that meets the target
    assert choose_quality([1, 2, 3, 4], Fake(TABLE), Target(min_psnr=34, max_sam=4.2))[0] == 4
    assert choose_quality([1, 2, 3, 4], Fake(TABLE), Target(bpppc=1.5, min_psnr=34))[0] == 3


@pytest.mark.parametrize("target, words", [
    (Target(bpppc=0.1), "<= 0.1 bpppc"),                    # below the cheapest quality
    (Target(min_psnr=50), "PSNR >= 50 dB"),                 # better than the best quality
    (Target(max_sam=0.5), "SAM <= 0.5 deg"),
    (Target(bpppc=1.0, min_psnr=34), "<= 1 bpppc"),         # q3 meets the PSNR but costs 1.4 bpppc
])
def test_impossible_targets_raise_naming_target_and_trials(target, words):
    with pytest.raises(TargetNotMetError, match="no quality meets the target") as e:
        choose_quality([1, 2, 3, 4], Fake(TABLE), target)
    assert words in str(e.value) and "q1: 0.3000 bpppc" in str(e.value)
    assert isinstance(e.value, InputError)  # a user error: one line in the CLI


@pytest.mark.parametrize("kwargs", [{}, {"bpppc": 0}, {"bpppc": -1}, {"min_psnr": math.nan}, {"max_sam": "4"},
                                    {"bpppc": True}])
def test_bad_targets(kwargs):
    with pytest.raises(InputError):
        Target(**kwargs)


def _scene(bands=16, rows=40, cols=36, seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)[:, None, None]
    cube = (3000 * (rng.uniform(0.2, 0.5, (1, rows, cols)) + rng.uniform(-0.2, 0.2, (1, rows, cols))
                    * np.sin(3 * wl)) + rng.normal(0, 15, (bands, rows, cols))).astype(np.int16)
    info = SceneInfo(rows=rows, cols=cols, bands=bands, dtype="int16", nodata=-32768)
    return cube, info, lambda y0, x0, h, w: cube[:, y0:y0 + h, x0:x0 + w].copy()


def test_real_encodes_meet_the_rate_and_psnr_targets_and_leave_only_the_chosen_file(tmp_path):
    cube, info, read = _scene()
    lo, hi = float(cube.min()), float(cube.max())
    rate, worst = {}, {}
    for q in (1, 2, 3):  # what each quality really costs and gives on this scene (tiles of 16 px: 9 tiles)
        path = str(tmp_path / f"q{q}.hsic")
        compress_scene(info, read, path, "cae1d", q, device="cpu", tile_size=16)
        rate[q] = metrics.bpppc(os.path.getsize(path), info.rows, info.cols, info.bands)
        worst[q] = measure_tiles(path, read, hi - lo, device="cpu")[0]
    assert rate[1] < rate[2] < rate[3]
    out = tmp_path / "out"
    out.mkdir()
    dst = str(out / "c.hsic")

    header, tried = compress_to_target(info, read, dst, "cae1d", Target(bpppc=(rate[2] + rate[3]) / 2),
                                       device="cpu", tile_size=16)
    assert header.quality == 2 and os.listdir(out) == ["c.hsic"]  # trial files removed
    assert metrics.bpppc(os.path.getsize(dst), info.rows, info.cols, info.bands) == pytest.approx(rate[2])

    target = min(worst[2], worst[3])  # met by q2 and q3 on every tile; the cheapest of those is chosen
    expect = min(q for q in (1, 2, 3) if worst[q] >= target)
    header, _ = compress_to_target(info, read, dst, "cae1d", Target(min_psnr=target), device="cpu", tile_size=16)
    assert header.quality == expect
    assert measure_tiles(dst, read, hi - lo, device="cpu")[0] >= target
    dec = SceneDecoder(dst, device="cpu")
    assert dec.read().shape == cube.shape
    dec.close()


@pytest.mark.parametrize("target", [Target(bpppc=0.01), Target(min_psnr=200.0), Target(max_sam=1e-6)])
def test_impossible_real_target_leaves_nothing(tmp_path, target):
    _, info, read = _scene(rows=20, cols=20)
    dst = str(tmp_path / "c.hsic")
    with pytest.raises(TargetNotMetError, match="no quality meets the target"):
        compress_to_target(info, read, dst, "cae1d", target, device="cpu", tile_size=16)
    assert os.listdir(tmp_path) == []


def test_measure_tiles_reports_the_worst_tile_against_an_independent_computation(tmp_path):
    """The first tile is noisy, the others smooth: the result is the first tile's PSNR and SAM (the
    worst), computed here with plain numpy from the decoded samples, not the last tile's."""
    cube, info, read = _scene(rows=32, cols=32, seed=4)
    rng = np.random.default_rng(5)
    cube[:, :16, :16] += rng.normal(0, 400, (16, 16, 16)).astype(np.int16)  # tile 0 of 4 (16 px tiles)
    path = str(tmp_path / "c.hsic")
    compress_scene(info, read, path, "cae1d", 2, device="cpu", tile_size=16)
    dec = SceneDecoder(path, device="cpu")
    rec = dec.read().astype(np.float64)
    dec.close()
    ref = cube.astype(np.float64)
    peak = ref.max() - ref.min()
    psnrs, sams = [], []
    for y0 in (0, 16):
        for x0 in (0, 16):
            a, b = ref[:, y0:y0 + 16, x0:x0 + 16], rec[:, y0:y0 + 16, x0:x0 + 16]
            psnrs.append(10 * np.log10(peak ** 2 / np.mean((a - b) ** 2)))
            cos = (a * b).sum(0) / np.sqrt((a * a).sum(0) * (b * b).sum(0))
            sams.append(float(np.degrees(np.arccos(np.clip(cos, -1, 1))).mean()))
    assert psnrs[0] < min(psnrs[1:]) - 1 and sams[0] > max(sams[1:])  # the scene is what this test needs
    worst_psnr, worst_sam = measure_tiles(path, read, peak, device="cpu")
    assert worst_psnr == pytest.approx(psnrs[0], abs=1e-6)
    assert worst_sam == pytest.approx(sams[0], abs=1e-4)


def test_rate_search_on_biased_estimates_lands_the_file_with_few_files():
    # The estimate is 15 % low and its error grows with the rate: files correct it, and the file kept
    # lands in the tolerance; a rate ~ -log(step) model stands in for the codec.
    real = lambda s: 0.05 * math.log(1.0 / s)  # noqa: E731
    files = []

    def trial(s):
        files.append(s)
        return Trial(3, real(s), step=s)

    target = Target(bpppc=0.3)
    step, trials = step_for_rate(trial, lambda s: 0.85 * real(s) ** 1.05, target, 0.01, 1e-6, 1.0)
    assert trials[-1].step == step and step in files and len(files) <= 3
    assert (1 - RATE_TOLERANCE) * 0.3 <= real(step) <= 0.3


def test_sampled_estimate_search_on_a_scene_of_many_tiles(tmp_path):
    # 64 tiles of 16 x 16: the --bpppc search runs on sampled-tile estimates and lands the file it keeps.
    rng = np.random.default_rng(5)
    t = np.linspace(0, 6, 128)
    cube = (1000 + 300 * np.sin(t[None, :, None] + t[None, None, :] * np.arange(1, 9)[:, None, None])
            + rng.normal(0, 5, (8, 128, 128))).astype(np.int16)
    info = SceneInfo(128, 128, 8, "int16")
    dst = str(tmp_path / "r.hsic")
    header, trials = compress_to_target(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], dst, "klt",
                                        Target(bpppc=1.0), tile_size=16)
    rate = metrics.bpppc(os.path.getsize(dst), 128, 128, 8)
    assert (1 - RATE_TOLERANCE) * 1.0 <= rate <= 1.0 and len(trials) <= 3
    assert sorted(os.listdir(tmp_path)) == ["r.hsic"]
    dec = SceneDecoder(dst)
    try:
        assert np.abs(dec.read().astype(float) - cube).mean() < 50
    finally:
        dec.close()


def test_known_trials_bracket_the_search_and_are_not_made_again():
    real = lambda s: 0.05 * math.log(1.0 / s)  # noqa: E731
    made = []

    def trial(s):
        made.append(s)
        return Trial(3, real(s), step=s)

    known = [Trial(3, real(s), step=s) for s in (1e-3, 1e-2)]  # 0.345 and 0.230 bpppc
    step, trials = choose_step(trial, Target(bpppc=0.3), 1e-3, 1e-6, 1.0, known=known)
    assert 1e-3 not in made and 1e-2 not in made and 1e-3 < step < 1e-2
    assert (1 - RATE_TOLERANCE) * 0.3 <= real(step) <= 0.3 and len(made) <= 3
    assert {t.step for t in known} <= {t.step for t in trials}


def test_a_rate_jump_inside_the_band_ends_the_search_on_the_file_below():
    # Keeping one more KLT component makes the rate jump (a basis column and a plane): no step lands in the
    # band, so the search narrows the jump and keeps the finest step that fits, without a file made twice.
    made = []

    def trial(s):
        made.append(s)
        return Trial(3, 0.05 * math.log(1.0 / s) + (0.02 if s < 0.003 else 0.0), step=s)

    step, trials = step_for_rate(trial, lambda s: 0.05 * math.log(1.0 / s), Target(bpppc=0.31), 0.01, 1e-6, 1.0)
    assert len(made) == len(set(made)) <= MAX_TRIALS_ON_A_JUMP
    assert step >= 0.003 and trial(step).bpppc <= 0.31


MAX_TRIALS_ON_A_JUMP = 12


def test_small_klt_scene_searches_on_the_rate_model_and_lands(tmp_path):
    # 4 tiles: the --bpppc search steers by the codec's rate model and checks on files: it lands in the
    # tolerance with at most two files (the model is calibrated on train/ scenes, this cube is synthetic).
    rng = np.random.default_rng(7)
    t = np.linspace(0, 6, 64)
    cube = (1000 + 300 * np.sin(t[None, :, None] + t[None, None, :] * np.arange(1, 13)[:, None, None])
            + rng.normal(0, 5, (12, 64, 64))).astype(np.int16)
    info = SceneInfo(64, 64, 12, "int16")
    dst = str(tmp_path / "r.hsic")
    for target in (0.5, 2.0):
        header, trials = compress_to_target(info, lambda y, x, h, w: cube[:, y:y + h, x:x + w], dst, "klt",
                                            Target(bpppc=target), tile_size=32)
        rate = metrics.bpppc(os.path.getsize(dst), 64, 64, 12)
        assert (1 - RATE_TOLERANCE) * target <= rate <= target and len(trials) <= 3
        assert sorted(os.listdir(tmp_path)) == ["r.hsic"]
