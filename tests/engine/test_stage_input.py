"""Seed codecs on the spectral stage (engine/codecs/stage_input.py): the planes, training on them, and a
round trip of a whole scene from the file's bytes alone; the raw-band variant stays selectable."""

import numpy as np
import pytest

from engine.codecs.stage_input import (ClusteredPlanes, ComponentPlanes, clustered_bytes, clustered_from_bytes,
                                        fit_clustered, fit_stage, plane_batch, significant, stage_precision,
                                        step_for)
from engine.training import TrainConfig, train


def cube(bands=40, rows=40, cols=36, seed=0):
    rng = np.random.default_rng(seed)
    wl = np.linspace(0, 1, bands)[:, None, None]
    a, b, c = rng.random((3, 1, rows, cols))
    return (3000 * (a + np.sin(4 * wl) * b + 0.3 * np.cos(9 * wl) * c) + 4000).astype("int16")


def normalised(x):
    return ((x - x.min()) / (x.max() - x.min())).astype(np.float32)


def test_planes_whiten_and_expand_back():
    x = normalised(cube(12, 10, 9).astype(np.float64))
    stage = fit_stage([(x, None)], 12, 16, 1e-4)
    planes = ComponentPlanes(stage, 16)
    w = planes.whiten(x)
    assert w.shape == (16, 10, 9) and not w[stage.k:].any()  # fewer components than planes: zeros
    # Unit variance over the scene, to the stage's quarter-octave precision.
    assert np.all(np.abs(np.log2(w[:stage.k].reshape(stage.k, -1).std(1))) < 0.2)
    back = planes.expand(w)
    assert np.abs(back - x).max() < 0.01
    sel = np.array([3, 0, 11])
    np.testing.assert_array_equal(planes.expand(w, sel), back[sel])
    assert np.allclose((planes.weights() * 12)[:stage.k], planes.std[:stage.k] ** 2)


def test_significant_components():
    var = np.array([1.0, 1e-2, 1e-4, 1e-8, 0.0])
    assert significant(var, 0.05, 16) == 2
    assert significant(var, 0.05, 1) == 1
    assert significant(np.zeros(3), 0.05, 16) == 1


def test_plane_batch_weights_are_band_mse():
    x = normalised(cube(20, 30, 30).astype(np.float64))
    valid = np.ones(x.shape, bool)
    valid[:, :3] = False  # no-data rows weigh nothing
    patches, pvalid = x[None, :, :8, :8], valid[None, :, :8, :8]
    planes = ComponentPlanes(fit_stage([(x, valid)], 20, 16, 1e-4), 16)
    xb, vb, bands = plane_batch(planes, patches, pvalid)
    assert xb.shape == vb.shape == (1, 16, 8, 8) and bands.tolist() == [20]
    assert not vb[0, :, :3].any()
    np.testing.assert_array_equal(vb[0, :, 5, 5], planes.weights())
    # Summed over planes, the weighted squared error is the band MSE of the coded components.
    err = np.random.default_rng(1).normal(size=xb.shape).astype(np.float32)
    band_err = np.stack([planes.expand(xb[0] + err[0]) - planes.expand(xb[0])])
    assert np.isclose((err ** 2 * vb)[0, :, 5, 5].sum(), (band_err[0, :, 5, 5] ** 2).mean(), rtol=1e-4)


def test_clustered_planes_bytes_and_band_reads():
    x = normalised(cube(30, 12, 10).astype(np.float64))
    bounds = [0, 7, 19, 30]
    stages = fit_clustered([(x, None)], bounds, 4, 1e-4)
    blob = clustered_bytes(bounds, stages)
    b2, s2 = clustered_from_bytes(blob, 30)
    assert b2 == bounds and [s.k for s in s2] == [s.k for s in stages]
    planes = ClusteredPlanes(b2, s2, 4)
    w = planes.whiten(x)
    assert w.shape == (12, 12, 10)
    back = planes.expand(w)
    assert np.abs(back - x).max() < 0.02
    sel = np.array([29, 0, 8, 18])
    np.testing.assert_array_equal(planes.expand(w, sel), back[sel])
    from engine.errors import FormatError
    with pytest.raises(FormatError):
        clustered_from_bytes(blob, 31)
    with pytest.raises(FormatError):
        clustered_from_bytes(blob[:10], 30)


@pytest.mark.parametrize("codec_id", ["s2cnet", "band-cluster", "mdim-drf", "hific-se", "hific-3d"])
def test_stage_input_scene_round_trip_from_bytes(codec_id, tmp_path):
    from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
    from engine.registry import get_codec

    rec = train(TrainConfig(codec_id, 2, steps=2, batch=2, device="cpu"), [("sensa_1.tif", cube(), None)],
                tmp_path)
    assert rec["recipe"]["arch"]["components"] > 0
    weights = tmp_path / rec["weights_file"]
    src = cube(40, 50, 44, seed=3)
    info = SceneInfo(rows=50, cols=44, bands=40, dtype="int16")
    dst = str(tmp_path / "s.hsic")
    compress_scene(info, lambda y, x, h, w: src[:, y:y + h, x:x + w], dst, codec_id, 2, device="cpu",
                   tile_size=32, weights=str(weights), overviews=())
    dec = SceneDecoder(dst, device="cpu")
    try:
        assert dec.codec.uses_scene_stage and dec.reader.scene_bytes
        full = dec.read()
        assert full.shape == src.shape and full.dtype == src.dtype
        np.testing.assert_array_equal(dec.read(5, 7, 30, 20, bands=[39, 2]), full[[39, 2], 5:35, 7:27])
    finally:
        dec.close()
    again = SceneDecoder(dst, device="cpu")
    np.testing.assert_array_equal(again.read(), full)
    again.close()
    # The raw-band variant is still a choice of the architecture, and needs no stage.
    rec = train(TrainConfig(codec_id, 2, steps=1, batch=1, device="cpu", arch={"components": 0}),
                [("sensa_1.tif", cube(), None)], tmp_path / "raw")
    raw = get_codec(codec_id, 2, device="cpu", weights=tmp_path / "raw" / rec["weights_file"])
    assert not raw.uses_scene_stage


def test_orthonormal_planes_keep_band_mse():
    """whiten=False: the planes in the KLT's units, every coded plane weighing 1 / bands."""
    x = normalised(cube(12, 10, 9).astype(np.float64))
    stage = fit_stage([(x, None)], 12, 16, 1e-4)
    planes = ComponentPlanes(stage, 16, whiten=False)
    w = planes.whiten(x)
    assert not w[stage.k:].any()
    # Orthonormal basis: the planes' energy is the centred bands' energy (up to the dropped components).
    centred = x - stage.mean[:, None, None]
    assert np.isclose((w ** 2).sum(), (centred ** 2).sum(), rtol=0.02)
    assert np.abs(planes.expand(w) - x).max() < 0.01
    assert np.allclose(planes.weights()[:stage.k], 1 / 12)


def test_planes_are_least_squares_on_the_stored_basis():
    """A coarsely stored basis is not quite orthonormal: the planes must still give back every band that
    the basis spans (its transpose leaked the leading components into every plane)."""
    noise = np.random.default_rng(2).normal(0, 0.01, (12, 10, 9))
    x = (normalised(cube(12, 10, 9).astype(np.float64)) + noise).astype(np.float32)
    stage = fit_stage([(x, None)], 12, 16, 1e-4, base_step=0.5)  # all 12 components, a coarse basis
    assert stage.k == 12 and stage_precision(1e-4, 0.5, 12, 12) > 1e-2
    basis_t = stage.basis.T @ stage.basis
    assert np.abs(basis_t - np.eye(12)).max() > 1e-3  # really not orthonormal
    planes = ComponentPlanes(stage, 16, whiten=False)
    np.testing.assert_allclose(planes.expand(planes.whiten(x)), x, atol=2e-5)


def test_stage_precision_follows_the_planes_step():
    """Weights on a fixed base store the stage as precisely as their own quantiser needs: coarser at low
    quality, never finer than the stage step; other weights keep the stage step."""
    assert stage_precision(0.002, 0.0, 16, 224) == 0.002
    q1, q3 = (stage_precision(0.002, step_for(lm), 16, 224) for lm in (1000.0, 30000.0))
    assert q1 > q3 >= 0.002
    assert stage_precision(0.002, 1e-6, 16, 224) == 0.002
    x = normalised(cube(60, 40, 40).astype(np.float64))
    fine, coarse = (fit_stage([(x, None)], 60, 16, 0.002, base) for base in (0.0, step_for(1000.0)))
    assert fine.k == coarse.k and len(coarse.to_bytes()) < len(fine.to_bytes())


def test_haar_base_is_orthonormal_and_the_refinements_start_at_zero():
    import torch
    from torch import nn

    from engine.models.stage_base import BasedAnalysis, BasedSynthesis, HaarBlocks, haar_matrix

    for levels in (1, 2, 3):
        h = haar_matrix(levels)
        np.testing.assert_allclose(h @ h.T, np.eye(2 ** levels), atol=1e-12)
    base = HaarBlocks(3, 2)
    x = torch.randn(2, 3, 8, 12)
    y = base(x)
    assert y.shape == (2, 48, 2, 3)
    assert torch.allclose(base.inverse(y), x, atol=1e-5)
    assert torch.isclose((y ** 2).sum(), (x ** 2).sum(), rtol=1e-5)
    # The 16 subbands of a 4 x 4 block: the first is the block's mean x 4 (orthonormal DC).
    assert torch.allclose(y[:, 0], x[:, 0].reshape(2, 2, 4, 3, 4).mean((2, 4)) * 4, atol=1e-5)
    ana = BasedAnalysis(nn.Conv2d(3, 48, 4, stride=4), 3, 2, 0.5)
    syn = BasedSynthesis(nn.ConvTranspose2d(48, 3, 4, stride=4), 3, 2, 0.5)
    assert torch.allclose(ana(x), y / 0.5) and torch.allclose(syn(ana(x)), x, atol=1e-5)


def test_fine_tuning_another_quality_takes_its_step(tmp_path):
    """--init from q2's weights keeps their parameters and architecture, but the quantiser step is q1's."""
    from engine.codecs.s2cnet import S2CNetCodec
    from engine.codecs.learned import load_weights

    scenes = [("sensa_1.tif", cube(20, 32, 32), None)]
    q2 = train(TrainConfig("s2cnet", 2, steps=1, batch=1, device="cpu"), scenes, tmp_path / "q2")
    q1 = train(TrainConfig("s2cnet", 1, steps=1, batch=1, device="cpu",
                           init=str(tmp_path / "q2" / q2["weights_file"])), scenes, tmp_path / "q1")
    archs = []
    load_weights(lambda a: archs.append(a) or S2CNetCodec.build_model(a), tmp_path / "q1" / q1["weights_file"])
    assert archs[0]["base_step"] == S2CNetCodec.recipes[1]["arch"]["base_step"] != \
        S2CNetCodec.recipes[2]["arch"]["base_step"]


def test_fine_tuning_from_float16_weights(tmp_path):
    """Shipped weights are float16, where the likelihoods' lower bound (1e-9) is 0: it is not taken from
    the file, so fine-tuning from them does not meet log(0) at its first step."""
    from engine.codecs.learned import load_weights, save_weights
    from engine.codecs.s2cnet import S2CNetCodec

    scenes = [("sensa_1.tif", cube(20, 32, 32), None)]
    rec = train(TrainConfig("s2cnet", 2, steps=1, batch=1, device="cpu"), scenes, tmp_path / "a")
    model = load_weights(S2CNetCodec.build_model, tmp_path / "a" / rec["weights_file"])
    half = tmp_path / "s2cnet-q2.pt"
    save_weights(model, S2CNetCodec.recipes[2]["arch"], half, half=True)
    again = load_weights(S2CNetCodec.build_model, half)
    assert again.entropy_bottleneck.likelihood_lower_bound.bound.item() > 0
    train(TrainConfig("s2cnet", 2, steps=1, batch=1, device="cpu", init=str(half)), scenes, tmp_path / "b")
