"""mdim-drf: Moran's-index neighbour selection, DRF convolution, importance mask and its bitstream."""

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from engine.codecs.learned import save_weights  # noqa: E402
from engine.codecs.mdim import ABLATIONS, ARCH, MDIMDRFCodec, decode_levels, encode_levels  # noqa: E402
from engine.errors import FormatError  # noqa: E402
from engine.models.mdim import MDIMDRF, DRFConv2d, ImportanceNet, moran_scores, select_neighbours  # noqa: E402
from engine.registry import get_codec  # noqa: E402

SMALL = {**ARCH, "N": 8, "M": 32, "adapter": 8, "levels": 4, "width": 8, "warmup": 0}


def _window_index(dy, dx, window):
    r = window // 2
    return (dy + r) * window + (dx + r)


def _map_with(vectors: dict, base, shape=(5, 5)):
    """A (1, C, H, W) map filled with ``base`` and the given {(row, col): vector} positions."""
    c = len(base)
    x = torch.tensor(base, dtype=torch.float32)[:, None, None].expand(c, *shape).clone()
    for (r, col), v in vectors.items():
        x[:, r, col] = torch.tensor(v, dtype=torch.float32)
    return x[None]


def test_moran_selection_prefers_correlated_then_near_neighbours():
    v = [1.0, 2.0, 3.0, 4.0]  # centre's spectrum
    anti = [4.0, 3.0, 2.0, 1.0]  # correlation -1 with v
    # Scaled and shifted copies of v correlate perfectly (Pearson): the index ignores gain and offset.
    x = _map_with({(2, 2): v, (2, 3): [2, 4, 6, 8], (0, 2): [11, 12, 13, 14], (3, 3): [0, 1, 2, 3]}, anti)
    idx = select_neighbours(x, window=5, kernel=2)[0, :, 2, 2].tolist()
    # Centre first; then by correlation / distance: (2,3) at distance 1, (3,3) at sqrt 2, (0,2) at 2.
    assert idx == [_window_index(0, 0, 5), _window_index(0, 1, 5), _window_index(1, 1, 5),
                   _window_index(-2, 0, 5)]


def test_moran_scores_are_inverse_distance_weighted_correlations():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.normal(size=(1, 6, 4, 4)).astype(np.float32))
    s = moran_scores(x, 3)
    a, b = x[0, :, 1, 1].numpy(), x[0, :, 2, 2].numpy()  # offset (+1, +1) from (1, 1)
    expected = np.corrcoef(a, b)[0, 1] / np.sqrt(2)
    assert s[0, _window_index(1, 1, 3), 1, 1].item() == pytest.approx(expected, abs=1e-4)


def test_positions_outside_the_map_are_never_chosen_when_enough_are_inside():
    x = torch.randn(2, 5, 6, 6)
    idx = select_neighbours(x, window=5, kernel=3)  # a corner has exactly 3 x 3 positions inside
    corner = idx[:, :, 0, 0]
    allowed = {_window_index(dy, dx, 5) for dy in range(3) for dx in range(3)}
    assert all(set(row.tolist()) == allowed for row in corner)
    assert (idx[:, 0] == _window_index(0, 0, 5)).all()  # rank 0 is always the centre


def test_drf_conv_shape_and_gradients():
    conv = DRFConv2d(4, 7, kernel=3, window=5)
    x = torch.randn(2, 4, 6, 5, requires_grad=True)
    y = conv(x)
    assert y.shape == (2, 7, 6, 5)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert conv.weight.grad.abs().sum() > 0 and conv.bias.grad.abs().sum() > 0


def test_drf_conv_over_the_whole_window_is_a_box_filter_with_equal_weights():
    # Window = kernel: every position of the 3 x 3 square is selected (in some order), so equal weights
    # must give the plain 3 x 3 convolution with zero padding.
    conv = DRFConv2d(3, 2, kernel=3, window=3)
    with torch.no_grad():
        conv.weight.fill_(0.5)
        conv.bias.fill_(0.25)
    x = torch.randn(1, 3, 5, 4)
    ref = torch.nn.functional.conv2d(x, torch.full((2, 3, 3, 3), 0.5), torch.full((2,), 0.25), padding=1)
    torch.testing.assert_close(conv(x), ref, atol=1e-5, rtol=1e-5)


def test_drf_conv_applies_the_first_weight_to_the_centre():
    conv = DRFConv2d(2, 1, kernel=2, window=3)
    with torch.no_grad():
        conv.weight.zero_()
        conv.weight[0, :, 0] = torch.tensor([1.0, -1.0])
        conv.bias.zero_()
    x = torch.randn(1, 2, 4, 4)
    torch.testing.assert_close(conv(x)[0, 0], x[0, 0] - x[0, 1])


@pytest.mark.parametrize("depths,drf", [(3, True), (3, False), (1, True), (1, False)])
def test_importance_map_variants_are_in_unit_interval_and_trainable(depths, drf):
    net = ImportanceNet(16, width=8, depths=depths, drf=drf)
    y = torch.randn(2, 16, 5, 6, requires_grad=True)
    p = net(y)
    assert p.shape == (2, 1, 5, 6) and float(p.detach().min()) >= 0 and float(p.detach().max()) <= 1
    p.sum().backward()
    assert y.grad.abs().sum() > 0
    assert any(isinstance(m, DRFConv2d) for m in net.modules()) == drf
    assert sum(a > 0 for a in net.alphas) == depths


def test_training_mask_is_nonzero_where_the_coder_keeps_channels_with_gradient_to_the_map():
    model = MDIMDRF(**SMALL)
    p = torch.rand(2, 1, 3, 3, requires_grad=True)
    mask = model.training_mask(p)
    hard = model.mask_of(model.levels_of(p.detach())).float()
    torch.testing.assert_close((mask.detach() > 0).float(), hard)
    assert ((hard - mask.detach()).sum(1) < SMALL["M"] / SMALL["levels"]).all()  # only one group is partial
    mask.sum().backward()
    assert p.grad.abs().sum() > 0
    # At the floor (every level 1) the next group still receives a gradient: training can leave it.
    low = torch.full((1, 1, 2, 2), 0.1, requires_grad=True)
    model.training_mask(low).sum().backward()
    assert (low.grad > 0).all()
    # Level l keeps l groups of M / L channels, at least one group.
    levels = torch.tensor([1, 2, 4]).reshape(1, 1, 1, 3)
    assert model.mask_of(levels).sum((0, 1, 2)).tolist() == [8, 16, 32]


def test_warm_up_keeps_every_channel_then_the_map_decides():
    model = MDIMDRF(**{**SMALL, "warmup": 2})
    for head in model.importance.heads:
        torch.nn.init.constant_(head.bias, -3.0)  # p ~ 0.05: the map would keep one group only
    x = torch.rand(1, 6, 16, 16)
    assert [float(model(x)["mask"].detach().mean()) for _ in range(3)] == [1.0, 1.0, 0.25]
    model.eval()
    assert float(model(x)["mask"].detach().mean()) == 0.25  # never in evaluation
    assert int(model.steps_seen) == 3


def test_training_rate_counts_only_kept_channels():
    torch.manual_seed(0)
    model = MDIMDRF(**SMALL)
    assert model.levels_of(model.importance(torch.randn(1, 32, 2, 2))).min() == 4  # starts keeping all
    for head in model.importance.heads:
        torch.nn.init.constant_(head.bias, 0.0)  # p ~ 0.5: about half the channels masked
    x = torch.rand(2, 10, 32, 32)
    out = model(x)
    valid = torch.ones_like(x, dtype=torch.bool)
    _, m = MDIMDRFCodec.training_loss(model, out, x, valid, {"lmbda": 1.0})
    bits_all = (-torch.log2(out["likelihoods"]["y"])).sum().item() / x.numel()
    assert 0 < m["bpppc"] < bits_all
    assert m["kept"] == pytest.approx(out["mask"].float().mean().item())


@pytest.mark.parametrize("levels", [[[1, 1], [1, 1]], [[3, 3], [3, 3]], [[1, 2], [16, 7]]])
def test_level_map_round_trip(levels):
    lv = np.array(levels)
    hist, string = encode_levels(lv, 16)
    assert len(hist) == 32
    np.testing.assert_array_equal(decode_levels(hist, string, 16, lv.size), lv.reshape(-1))


def test_corrupt_level_maps_are_format_errors():
    hist, string = encode_levels(np.array([1, 2, 2, 5]), 16)
    with pytest.raises(FormatError):
        decode_levels(hist[:-2], string, 16, 4)
    with pytest.raises(FormatError):
        decode_levels(hist, string, 16, 5)  # counts do not sum to the tile's positions
    one, _ = encode_levels(np.array([3, 3]), 16)
    with pytest.raises(FormatError):
        decode_levels(one, b"xx", 16, 2)


def _codec(arch, tmp_path, seed=0):
    torch.manual_seed(seed)
    path = tmp_path / f"mdim-{seed}.pt"
    save_weights(MDIMDRF(**arch), arch, path)
    return get_codec("mdim-drf", 2, device="cpu", weights=path), path


def _tile(bands=20, rows=40, cols=36, seed=0):
    rng = np.random.default_rng(seed)
    base = rng.random((3, rows, cols)).astype(np.float32)
    mix = rng.random((bands, 3)).astype(np.float32) / 3
    return np.einsum("bk,khw->bhw", mix, base).astype(np.float32)


@pytest.mark.parametrize("name", ["full", "uncentred", *ABLATIONS])
def test_every_variant_round_trips_from_bytes(name, tmp_path):
    arch = {"full": SMALL, "uncentred": {**SMALL, "center": False}}.get(name) or \
        {**ABLATIONS[name], **{k: SMALL[k] for k in ("N", "M", "adapter", "levels", "width")}}
    codec, path = _codec(arch, tmp_path)
    tile = _tile()
    data = codec.encode_tile(tile)
    out = get_codec("mdim-drf", 2, device="cpu", weights=path).decode_tile(data, tile.shape)
    assert out.shape == tile.shape and out.dtype == np.float32 and np.isfinite(out).all()
    # The decoder uses the bytes only: the same output as the encoder's model on the masked latent.
    x = torch.from_numpy(tile)[None]
    with torch.no_grad():
        x_in, m = codec.model.centre(x)
        assert (m is not None) == arch["center"]
        y, p = codec.model.analyse(x_in)
        mask = codec.model.mask_of(codec.model.levels_of(p))
        eb = codec.model.entropy_bottleneck
        med = eb.quantiles[:, 0, 1][None, :, None, None]
        y_hat = (torch.round(y - med) + med) * mask
        ref = codec.model.synthesise(y_hat, tile.shape[0], tile.shape[1:])
        ref = codec.model.uncentre(ref, m)[0].numpy()
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_tile_means_are_side_information(tmp_path):
    """center: the payload ends with the per-band float16 means; the decoder adds them back."""
    from engine.format.strings import pack_strings, unpack_strings

    codec, _ = _codec(SMALL, tmp_path)
    tile = _tile()
    shape, groups = unpack_strings(codec.encode_tile(tile), 1)
    assert len(groups) == 4
    np.testing.assert_array_equal(np.frombuffer(groups[3][0], "<f2"), tile.mean((1, 2)).astype("<f2"))
    base = codec.decode_tile(pack_strings(shape, groups), tile.shape)
    up = (np.frombuffer(groups[3][0], "<f2") + np.float16(0.5)).astype("<f2").tobytes()
    moved = codec.decode_tile(pack_strings(shape, [*groups[:3], [up]]), tile.shape)
    np.testing.assert_allclose(moved - base, 0.5, atol=1e-3)
    with pytest.raises(FormatError, match="means"):
        codec.decode_tile(pack_strings(shape, [*groups[:3], [groups[3][0][:-2]]]), tile.shape)
    with pytest.raises(FormatError, match="4 strings"):
        codec.decode_tile(pack_strings(shape, groups[:3]), tile.shape)


def test_masked_channels_cost_fewer_bits(tmp_path, monkeypatch):
    codec, path = _codec(SMALL, tmp_path)
    tile = _tile(rows=64, cols=64)
    sizes = {}
    for level in (1, 2, 4):
        monkeypatch.setattr(codec.model, "levels_of", lambda p, level=level: torch.full_like(p, level).long())
        data = codec.encode_tile(tile)
        sizes[level] = len(data)
        # Masked channels decode to zero: the decoder read exactly the kept symbols from the bytes.
        out = get_codec("mdim-drf", 2, device="cpu", weights=path).decode_tile(data, tile.shape)
        assert np.isfinite(out).all()
    assert sizes[1] < sizes[2] < sizes[4]
    assert sizes[1] < 0.5 * sizes[4]


def test_corrupt_tiles_are_format_errors(tmp_path):
    codec, _ = _codec(SMALL, tmp_path)
    tile = _tile(rows=32, cols=32)
    data = codec.encode_tile(tile)
    with pytest.raises(FormatError):
        codec.decode_tile(data, (20, 80, 80))  # latent shape of another tile size
    with pytest.raises(FormatError):
        codec.decode_tile(data[:-1], tile.shape)


def test_ablation_variant_is_trainable_through_the_arch_option(tmp_path):
    from engine.errors import InputError
    from engine.training import TrainConfig, train

    rng = np.random.default_rng(0)
    scenes = [("aviris_x.tif", (rng.random((12, 40, 40)) * 1000).astype(np.int16), None)]
    small = {k: SMALL[k] for k in ("N", "M", "adapter", "levels", "width")}
    cfg = TrainConfig("mdim-drf", 2, steps=2, batch=2, device="cpu",
                      arch={**small, "components": 0, "drf": False, "depths": 1})
    rec = train(cfg, scenes, tmp_path)
    assert rec["recipe"]["arch"]["drf"] is False and rec["recipe"]["arch"]["depths"] == 1
    codec = get_codec("mdim-drf", 2, device="cpu", weights=tmp_path / "mdim-drf-q2.pt")
    assert not any(isinstance(m, DRFConv2d) for m in codec.model.modules())
    assert codec.model.importance.alphas == (0.0, 0.0, 1.0)
    with pytest.raises(InputError, match="no architecture key"):
        train(TrainConfig("mdim-drf", 2, steps=1, device="cpu", arch={"nope": 1}), scenes, tmp_path)


def test_based_model_at_init_is_the_haar_base_and_a_level_keeps_whole_components():
    """The shipped recipe: y = haar(x) / step and x_hat = haar^T(y_hat * step) until training moves the
    refinements; latent group g holds the 16 subbands of plane g; every channel is kept at start."""
    from engine.models.stage_base import HaarBlocks

    arch = MDIMDRFCodec.recipes[2]["arch"]
    assert arch["gain"] == 1.0 and arch["M"] == 16 * arch["components"] and not arch["whiten"]
    model = MDIMDRFCodec.build_model(arch).eval()
    x = torch.randn(2, 16, 16, 12)
    base, step = HaarBlocks(16, 2), arch["base_step"]
    with torch.no_grad():
        y, p = model.analyse(x)
        assert torch.equal(y, base(x) / step)
        y_hat = torch.round(y)
        assert torch.allclose(model.synthesise(y_hat, 16, (16, 12)), base.inverse(y_hat * step), atol=1e-5)
        assert (model.levels_of(p) == 16).all()
    x0 = x.clone()
    x0[:, 3:] = 0  # planes 3.. empty: their subbands (groups 3..) are zero, the first three groups not
    with torch.no_grad():
        y = model.analyse(x0)[0]
    group = torch.arange(256) // 16
    assert not y[:, group >= 3].any() and y[:, group < 3].abs().amax((0, 2, 3)).gt(0).all()
    with pytest.raises(ValueError, match="gain 1"):
        MDIMDRFCodec.build_model({**arch, "gain": 16.0})


def test_base_alone_ablation_keeps_the_refinements_at_zero(tmp_path):
    from engine.training import TrainConfig, train

    rng = np.random.default_rng(0)
    scenes = [("aviris_x.tif", (rng.random((20, 40, 40)) * 1000).astype(np.int16), None)]
    for refine in (False, True):
        rec = train(TrainConfig("mdim-drf", 2, steps=3, batch=2, device="cpu",
                                arch={"N": 8, "width": 8, "refine": refine}), scenes, tmp_path / str(refine))
        model = get_codec("mdim-drf", 2, device="cpu", weights=tmp_path / str(refine) / rec["weights_file"]).model
        scales = (model.g_a.refine.scale, model.g_s.refine.scale)
        assert all(s.abs().sum() > 0 for s in scales) == refine
        assert all(not s.any() for s in scales) == (not refine)
