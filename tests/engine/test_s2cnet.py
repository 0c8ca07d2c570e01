"""s2cnet: the two training stages (hsic train --stage), the mixed loss, round trip from bytes."""

import numpy as np
import pytest
import torch

from engine.codecs.learned import load_weights
from engine.codecs.s2cnet import S2CNetCodec
from engine.errors import InputError
from engine.training import TrainConfig, train


def scenes():
    rng = np.random.default_rng(0)
    wl = np.linspace(0, 1, 40)[:, None, None]
    cube = 3000 * (rng.random((1, 36, 36)) + np.sin(4 * wl) * rng.random((1, 36, 36))) + 4000
    return [("sensa_1.tif", cube.astype("int16"), None)]


RAW = {"components": 0}  # the raw-band variant, the one trained in two stages


def test_spectral_stage_then_joint_stage(tmp_path):
    rec1 = train(TrainConfig("s2cnet", 2, steps=3, batch=16, device="cpu", stage="spectral", arch=RAW), scenes(),
                 tmp_path)
    assert rec1["weights_file"] == "s2cnet-spectral-q2.pt" and rec1["recipe"]["stage"] == "spectral"
    assert rec1["recipe"]["lmbda"] == S2CNetCodec.stages["spectral"]["lmbda"]
    stage1 = load_weights(S2CNetCodec.build_model, tmp_path / "s2cnet-spectral-q2.pt")
    torch.manual_seed(0)  # the seed train() builds the model with
    fresh = S2CNetCodec.build_model({**S2CNetCodec.recipes[2]["arch"], **RAW})
    # Stage 1 trains the spectral autoencoder alone; the spatial codec keeps its initial weights.
    assert torch.equal(stage1.g_a[0].weight, fresh.g_a[0].weight)
    assert not torch.equal(stage1.spectral.g_a_fc.weight, fresh.spectral.g_a_fc.weight)

    rec2 = train(TrainConfig("s2cnet", 2, steps=2, batch=1, device="cpu",
                             init=str(tmp_path / "s2cnet-spectral-q2.pt")), scenes(), tmp_path)
    assert rec2["weights_file"] == "s2cnet-q2.pt" and rec2["recipe"]["stage"] == "joint"
    assert {"mse", "bpppc", "latent_mse"} <= set(rec2["final"])
    joint = load_weights(S2CNetCodec.build_model, tmp_path / "s2cnet-q2.pt")
    assert not torch.equal(joint.g_a[0].weight, stage1.g_a[0].weight)

    codec = S2CNetCodec(2, device="cpu", weights=tmp_path / "s2cnet-q2.pt")
    tile = np.random.default_rng(1).random((40, 21, 37)).astype(np.float32)
    data = codec.encode_tile(tile)
    out = S2CNetCodec(2, device="cpu", weights=tmp_path / "s2cnet-q2.pt").decode_tile(data, tile.shape)
    assert out.shape == tile.shape and np.isfinite(out).all()


def test_stage_input_variant_has_no_spectral_stage(tmp_path):
    with pytest.raises(InputError, match="no spectral stage"):
        train(TrainConfig("s2cnet", 2, steps=1, stage="spectral"), scenes(), tmp_path)


def test_unknown_stages_are_input_errors(tmp_path):
    with pytest.raises(InputError, match="its stages: spectral, joint"):
        train(TrainConfig("s2cnet", 2, steps=1, stage="spatial"), scenes(), tmp_path)
    with pytest.raises(InputError, match="no training stage"):
        train(TrainConfig("cae1d", 2, steps=1, stage="spectral"), scenes(), tmp_path)


def test_mixed_loss_weighs_spectral_and_latent_errors_and_rate():
    x = torch.zeros(1, 4, 2, 2)
    out = {"x_hat": torch.full((1, 4, 2, 2), 0.1, requires_grad=True), "u": torch.zeros(1, 3, 2, 2, requires_grad=True), "u_hat": torch.full((1, 3, 2, 2), 0.5),
           "likelihoods": {"y": torch.full((5,), 0.5), "z": torch.full((3,), 0.25)}}
    recipe = {**S2CNetCodec.recipes[1], "stage": "joint"}
    loss, m = S2CNetCodec.training_loss(None, out, x, torch.ones_like(x, dtype=torch.bool), recipe)
    bits = 5 * 1 + 3 * 2
    assert m["mse"] == pytest.approx(0.01) and m["latent_mse"] == pytest.approx(0.25)
    assert m["bpppc"] == pytest.approx(bits / 16)
    assert loss.item() == pytest.approx(recipe["lmbda"] * (0.01 + recipe["alpha"] * 0.25) + bits / 16, rel=1e-5)
    loss.backward()
    assert out["u"].grad is None  # the encoder's latent is the target of the latent term, not trained by it


@pytest.mark.parametrize("center", [True, False])
def test_latent_map_means_travel_as_side_information(center):
    """center: the tile's latent map is coded relative to its per-channel means (float16, a third group)."""
    from engine.codecs.learned import onednn_off
    from engine.models.s2cnet import S2CNet

    torch.manual_seed(0)
    model = S2CNet(latent=4, width=8, positions=8, N=8, M=8, center=center, input_gain=100.0).eval()
    model.update_tables()
    model.entropy_bottleneck.update(force=True)
    x = torch.from_numpy(np.random.default_rng(2).random((1, 12, 20, 20)).astype(np.float32))
    with torch.no_grad(), onednn_off():
        groups, shape = model.compress(x)
        assert len(groups) == (3 if center else 2) == len(model.symbols_per_string(shape))
        out = model.decompress(groups, shape, 12, (20, 20), "cpu")
        u = model._in(x)
        if center:
            m = model.tile_means(u)
            np.testing.assert_array_equal(np.frombuffer(groups[2][0], "<f2"), m[0].numpy().astype("<f2"))
            y_hat = model.decode_symbols(groups, shape)[0]
            ref = model._out(model.uncentre(model.g_s(y_hat), m), 12)[..., :20, :20]
            np.testing.assert_allclose(out.numpy(), ref.numpy(), atol=1e-5)
    assert out.shape == x.shape and torch.isfinite(out).all()
