"""hific-se / hific-3d: the SSIM term, the target-rate lambda switch, SE placements, the 3D ends, the GAN stage."""

import json

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.codecs.hific import LAMBDA_B, PAPER_BANDS, TABLE_I, HiFiC3D, HiFiCSE, target_rate_lambda  # noqa: E402
from engine.codecs.learned import onednn_off  # noqa: E402
from engine.errors import InputError  # noqa: E402
from engine.metrics import ssim as ssim_metric  # noqa: E402
from engine.models.hific import SE_PLACEMENTS, HiFiC, SqueezeExcite, ssim  # noqa: E402
from engine.training import TrainConfig, train  # noqa: E402

TINY = {"widths": [4, 4, 4, 4, 4], "M": 8, "hyper": 8, "blocks": 1, "adapter": 4}
TINY_3D = {**TINY, "se": "none", "conv3d": True, "groups": 2, "conv3d_channels": 2}


def smooth(shape, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random(shape).cumsum(-1).cumsum(-2)
    return (x / x.max()).astype(np.float32)


def test_paper_table_i():
    assert TABLE_I == {0.2: 2.0, 0.4: 1.0, 0.6: 0.5, 0.8: 0.25, 1.0: 0.125}
    assert LAMBDA_B < min(TABLE_I.values())
    for cls in (HiFiCSE, HiFiC3D):
        rs = [cls.recipes[q] for q in cls.info.qualities]
        assert [r["r_t"] for r in rs] == sorted(r["r_t"] for r in rs)
        assert all(r["lambda_a"] == TABLE_I[r["r_t"]] for r in rs)


def test_ssim_matches_the_metric_and_is_differentiable():
    ref = smooth((2, 3, 20, 17))
    rec = np.clip(ref + np.random.default_rng(1).normal(0, 0.05, ref.shape), 0, 1).astype(np.float32)
    r, q = torch.from_numpy(ref), torch.from_numpy(rec).requires_grad_()
    got = ssim(r, q)
    want = np.mean([ssim_metric(ref[i], rec[i], data_range=1.0) for i in range(2)])
    assert got.item() == pytest.approx(want, abs=1e-5)
    assert ssim(r, r).item() == pytest.approx(1.0, abs=1e-6)
    got.backward()
    assert q.grad.abs().sum() > 0
    worse = torch.from_numpy(np.clip(ref + np.random.default_rng(1).normal(0, 0.2, ref.shape), 0, 1).astype("f4"))
    assert ssim(r, worse) < got


def test_target_rate_lambda_switch():
    assert target_rate_lambda(0.61, 0.6, 0.5, 0.01) == 0.5
    assert target_rate_lambda(0.6, 0.6, 0.5, 0.01) == 0.01
    assert target_rate_lambda(0.1, 0.6, 0.5) == LAMBDA_B


@pytest.mark.parametrize("rate", [0.1, 0.9])
def test_training_loss_uses_the_switched_lambda(rate):
    model = HiFiC(**TINY)
    recipe = {**HiFiCSE.recipes[2], "se_l1": 0.0, "gan": True}  # r_t 0.6
    xb = torch.from_numpy(smooth((2, 5, 8, 8)))
    vb = torch.ones_like(xb, dtype=torch.bool)
    # One likelihood per sample giving rate / 369 bits each: the paper's rate for 369 bands is ``rate``.
    lk = torch.full(xb.shape, 2.0 ** -(rate / PAPER_BANDS))
    out = {"x_hat": xb.clone(), "likelihoods": {"y": lk}}
    loss, m = HiFiCSE.training_loss(model, out, xb, vb, recipe)
    lam = recipe["lambda_a"] if rate > recipe["r_t"] else recipe["lambda_b"]
    assert m["lambda"] == lam and m["rate"] == pytest.approx(rate, rel=1e-3)
    assert m["bpppc"] == pytest.approx(rate / PAPER_BANDS, rel=1e-3)
    assert loss.item() == pytest.approx(lam * rate, rel=1e-3)  # perfect x_hat: no distortion
    # Stage 1 (no adversary) trains at its own, fixed lambda whatever the rate.
    _, m1 = HiFiCSE.training_loss(model, out, xb, vb, {**recipe, "gan": False})
    assert m1["lambda"] == recipe["lambda_stage1"] < recipe["lambda_b"]


@pytest.mark.parametrize("se", SE_PLACEMENTS)
def test_se_placements_build_and_run(se):
    model = HiFiC(**TINY, se=se)
    n_se = sum(isinstance(m, SqueezeExcite) for m in model.modules())
    # E has 5 norms; G has 1 + 2 per residual block + 4.
    assert n_se == {"none": 0, "e-first": 1, "e-norm": 5, "eg-norm": 5 + 1 + 2 + 4}[se]
    out = model(torch.from_numpy(smooth((1, 9, 20, 24))))
    assert out["x_hat"].shape == (1, 9, 20, 24)
    assert (model.se_l1().item() > 0) == (se != "none")


def test_bad_se_placement_is_refused():
    with pytest.raises(ValueError, match="placement"):
        HiFiC(**TINY, se="everywhere")


@pytest.mark.parametrize("bands", [1, 7, 33])
def test_3d_variant_any_band_count(bands):
    model = HiFiC(**TINY_3D).eval()
    assert not hasattr(model, "adapter") or model.adapter is None
    assert isinstance(model.head3d.conv, torch.nn.Conv3d) and isinstance(model.tail3d.conv, torch.nn.Conv3d)
    x = torch.from_numpy(smooth((1, bands, 16, 16)))
    model.update_tables()  # the coder's tables, as load_weights builds them
    model.entropy_bottleneck.update(force=True)
    with torch.no_grad():
        groups, shape = model.compress(x)
        y = model.decompress(groups, shape, bands, (16, 16), "cpu")
    assert y.shape == x.shape and torch.isfinite(y).all()


@pytest.mark.parametrize("arch", [TINY, TINY_3D])
def test_tile_means_travel_as_side_information(arch):
    """center=True: the per-band means are written as float16 and added back from the bytes alone."""
    model = HiFiC(**arch, center=True, input_gain=20.0).eval()
    model.update_tables()
    model.entropy_bottleneck.update(force=True)
    x = torch.from_numpy(smooth((2, 7, 16, 16)))
    x[1] += torch.linspace(0, 3, 7)[:, None, None]  # a second tile with other means
    with torch.no_grad():
        groups, shape = model.compress(x)
        assert len(groups) == 3 and len(model.symbols_per_string(shape)) == 3
        means = [np.frombuffer(s, "<f2") for s in groups[2]]
        assert [m.size for m in means] == [7, 7]
        np.testing.assert_array_equal(np.stack(means), x.mean((2, 3)).numpy().astype("<f2"))
        y = model.decompress(groups, shape, 7, (16, 16), "cpu")
        # Other means, same latent: the output moves by exactly the difference of the means.
        shifted = [[s for s in groups[0]], groups[1], [(np.frombuffer(s, "<f2") + np.float16(1)).tobytes()
                                                        for s in groups[2]]]
        y2 = model.decompress(shifted, shape, 7, (16, 16), "cpu")
    assert y.shape == x.shape
    # The untrained network adds little; the means put each tile at its own level.
    assert (y.mean((2, 3)) - x.mean((2, 3))).abs().max() < 0.5
    np.testing.assert_allclose((y2 - y).numpy(), 1.0, atol=1e-3)
    # Training's forward sees the same float16-rounded means as the decoder.
    out = model(x)["x_hat"]
    assert out.shape == x.shape


def test_centred_codec_round_trip_is_batch_exact():
    model = HiFiC(**TINY_3D, center=True, input_gain=20.0).eval()
    model.update_tables()
    model.entropy_bottleneck.update(force=True)
    x = torch.from_numpy(np.stack([smooth((5, 16, 16), s) for s in range(3)]))
    with torch.no_grad(), onednn_off():  # as the codec runs it (oneDNN rounds by batch size)
        g3, shape = model.compress(x)
        g1, _ = model.compress(x[1:2])
        assert [g[1] for g in g3] == [g[0] for g in g1]
        y3 = model.decompress(g3, shape, 5, (16, 16), "cpu")
        y1 = model.decompress(g1, shape, 5, (16, 16), "cpu")
    np.testing.assert_array_equal(y3[1:2].numpy(), y1.numpy())


def _scenes():
    return [("enmap_a.tif", (smooth((12, 40, 40), 2) * 1000).astype("int16"), None),
            ("aviris_b.tif", (smooth((9, 36, 44), 3) * 900).astype("uint16"), None)]


@pytest.fixture
def tiny_recipes(monkeypatch):
    for cls, arch in ((HiFiCSE, TINY), (HiFiC3D, TINY_3D)):
        monkeypatch.setattr(cls, "recipes", {q: {**r, "arch": arch, "batch": 2} for q, r in cls.recipes.items()})


def test_one_gan_step_changes_the_discriminator(tiny_recipes):
    model = HiFiC(**TINY)
    recipe = {**HiFiCSE.recipes[2], "gan": True}
    adv = HiFiCSE.make_adversary(model, recipe, "cpu")
    assert HiFiCSE.make_adversary(model, HiFiCSE.recipes[2], "cpu") is None  # first stage: no adversary
    before = {k: v.clone() for k, v in adv.state_dict()["net"].items()}
    xb = torch.from_numpy(smooth((2, 6, 64, 64)))
    vb = torch.ones_like(xb, dtype=torch.bool)
    out = model(xb)
    g = adv.generator_loss(out, xb, vb)
    g.backward()
    assert g.item() > 0 and any(p.grad is not None and p.grad.abs().sum() > 0 for p in model.parameters())
    m = adv.step(out, xb, vb)
    assert {"d_loss", "g_adv", "perceptual"} <= set(m)
    after = adv.state_dict()["net"]
    assert any(not torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("cls", [HiFiCSE, HiFiC3D])
def test_two_stage_training_through_the_loop(cls, tiny_recipes, tmp_path):
    cid = cls.info.id
    train(TrainConfig(cid, 2, steps=2, seed=1, device="cpu"), _scenes(), tmp_path / "s1")
    rec1 = json.loads((tmp_path / "s1" / f"{cid}-q2.json").read_text())
    assert "d_loss" not in rec1["final"] and rec1["config"]["gan"] is False
    w1 = tmp_path / "s1" / f"{cid}-q2.pt"
    rec2 = train(TrainConfig(cid, 1, steps=2, seed=1, device="cpu", gan=True, init=str(w1)), _scenes(),
                 tmp_path / "s2")
    assert "d_loss" in rec2["final"] and rec2["recipe"]["gan"] is True and rec2["init"]["sha256"]
    # The discriminator is not part of the codec's weights.
    keys1 = set(torch.load(w1, weights_only=True)["state_dict"])
    keys2 = set(torch.load(tmp_path / "s2" / f"{cid}-q1.pt", weights_only=True)["state_dict"])
    assert keys1 == keys2 and not any(k.startswith(("layers", "cond", "out.")) for k in keys2)


def test_gan_stage_needs_a_codec_with_an_adversary(tmp_path):
    with pytest.raises(InputError, match="adversarial"):
        train(TrainConfig("cae1d", 1, steps=1, gan=True, device="cpu"), _scenes(), tmp_path)


@pytest.mark.parametrize("codec_id", ["hific-se", "hific-3d"])
def test_raw_band_codec_checks_the_means_string(codec_id):
    from engine.errors import FormatError
    from engine.format.strings import pack_strings, unpack_strings
    from engine.registry import get_codec
    from engine.weight_files import WEIGHTS_DIR

    # The retired raw-band weights (archived by digest among later retired ones: files written with any of
    # them still decode).
    archived = [get_codec(codec_id, 1, device="cpu", weights=w)
                for w in sorted(WEIGHTS_DIR.glob(f"archive/{codec_id}-q1-*.pt"))]
    raw = [c for c in archived if not c.uses_scene_stage]
    assert len(raw) == 1
    codec = raw[0]
    assert codec.model.center  # the raw-band weights send tile means
    tile = smooth((9, 16, 16))
    shape, groups = unpack_strings(codec.encode_tile(tile), 64)
    assert [len(s) for s in groups[2]] == [18]
    np.testing.assert_array_equal(np.frombuffer(groups[2][0], "<f2"), tile.mean((1, 2)).astype("<f2"))
    for bad in (groups[2][0][:-2], groups[2][0] + b"\0\0"):
        with pytest.raises(FormatError, match="means"):
            codec.decode_tile(pack_strings(shape, [*groups[:2], [bad]]), tile.shape)


PLANES_TINY = {"components": 3, "widths": [4, 4, 4], "hyper": 8, "blocks": 1, "base_step": 0.05}


@pytest.mark.parametrize("conv3d", [False, True])
def test_planes_model_at_init_is_the_haar_base_alone(conv3d):
    """The based HiFiC's E and G start at zero: its output is the Haar base, quantised with its step."""
    from engine.models.hific import HiFiCPlanes
    from engine.models.stage_base import HaarBlocks

    arch = {**PLANES_TINY, **({"se": "none", "conv3d": True, "groups": 2, "conv3d_channels": 2} if conv3d else {})}
    model = HiFiCPlanes(**arch).eval()
    x = torch.from_numpy(smooth((2, 3, 16, 16))) * 0.3
    base = HaarBlocks(3, 2)
    with torch.no_grad():
        out = model(x)
        want = base.inverse(torch.round(base(x) / 0.05) * 0.05)
    assert out["y_hat"].shape == (2, 48, 4, 4)
    torch.testing.assert_close(out["x_hat"], want, atol=1e-5, rtol=0)
    # Trained, the refinements move away from zero; with refine=False they stay there.
    for refine in (True, False):
        m = HiFiCPlanes(**arch, refine=refine).train()
        opt = torch.optim.Adam([p for p in m.parameters() if p.requires_grad], lr=1e-2)
        for _ in range(2):
            o = m(x)
            loss = ((o["x_hat"] - x) ** 2).mean() * 1e4 - sum(torch.log2(v).mean() for v in o["likelihoods"].values())
            opt.zero_grad()
            loss.backward()
            opt.step()
        moved = m.g_a.refine.scale.abs().sum() + m.g_s.refine.scale.abs().sum()
        assert (moved > 0) == refine


def test_planes_recipes_use_the_base_step_of_their_lmbda():
    from engine.codecs.stage_input import step_for

    for cls in (HiFiCSE, HiFiC3D):
        for q, r in cls.recipes.items():
            assert r["arch"]["components"] == 16 and r["arch"]["whiten"] is False
            assert r["arch"]["base_step"] == pytest.approx(step_for(r["lmbda"]), abs=1e-4)
