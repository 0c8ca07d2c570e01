"""band-cluster: the partition search recovers known blocks of correlated bands; the fallback for unseen
band counts; partitions found in training and stored with the weights; round trip from bytes."""

import numpy as np
import pytest

from engine.band_partition import (band_correlation, find_partition, partition_for, rescale_partition,
                                   size_limits)
from engine.errors import InputError


def block_cube(bounds, rows=20, cols=20, noise=0.05, seed=0):
    """Bands in each [b_k, b_k+1) follow one random image plus noise: highly correlated inside a block,
    nearly uncorrelated across blocks."""
    rng = np.random.default_rng(seed)
    bands = []
    for s, e in zip(bounds[:-1], bounds[1:]):
        base = rng.random((rows, cols))
        for k in range(e - s):
            bands.append((0.5 + 0.5 * k / max(e - s, 1)) * base + noise * rng.random((rows, cols)))
    return np.stack(bands).astype(np.float32)


def block_corr(bounds, inside=0.95, across=0.2):
    b = bounds[-1]
    r = np.full((b, b), across)
    for s, e in zip(bounds[:-1], bounds[1:]):
        r[s:e, s:e] = inside
    np.fill_diagonal(r, 1.0)
    return r


@pytest.mark.parametrize("bounds", [[0, 40, 96, 155, 165, 224], [0, 3, 10, 11, 30], [0, 50, 100]])
def test_known_blocks_of_a_correlation_matrix_are_recovered(bounds):
    assert find_partition(block_corr(bounds), len(bounds) - 1) == bounds


def test_blocks_are_recovered_from_a_cube_with_unequal_correlations():
    bounds = [0, 12, 30, 37, 60]
    x = block_cube(bounds)
    r = band_correlation(x)
    assert r.shape == (60, 60) and np.allclose(np.diag(r), 1)
    assert find_partition(r, 4, *size_limits(60, 4, 1 / 32, 0.4)) == bounds


def test_gradual_decay_splits_evenly_and_limits_hold():
    idx = np.arange(100)
    r = np.exp(-np.abs(idx[:, None] - idx[None]) / 20.0)  # no blocks: a smooth decay
    b = find_partition(r, 4, 10, 40)
    sizes = np.diff(b)
    assert b[0] == 0 and b[-1] == 100 and (sizes >= 10).all() and (sizes <= 40).all()
    assert sizes.max() - sizes.min() <= 2  # by symmetry, near-equal intervals
    # Limits win over the blocks: a 60-band block cannot be one interval when at most 40 are allowed.
    b = find_partition(block_corr([0, 60, 100]), 3, 5, 40)
    assert max(np.diff(b)) <= 40 and b[-2] == 60  # the block boundary is kept, the big block split


def test_constant_and_nodata_bands_do_not_break_the_correlation():
    x = block_cube([0, 10, 20])
    x[5] = 0.0  # a band filled with one value (an all-nodata band after filling)
    valid = np.ones_like(x, dtype=bool)
    valid[:, 0, 0] = False
    r = band_correlation(x, valid)
    assert np.isfinite(r).all() and r[5, 5] == 1 and r[5, 4] == 0
    assert find_partition(r, 2) in ([0, 10, 20], [0, 5, 20], [0, 6, 20])


@pytest.mark.parametrize("bad", [dict(groups=0), dict(groups=11), dict(groups=2, min_size=6),
                                 dict(groups=2, max_size=4)])
def test_impossible_partitions_are_input_errors(bad):
    with pytest.raises(InputError):
        find_partition(np.eye(10), **bad)


def test_size_limits_always_admit_a_partition():
    for bands in (1, 5, 7, 33, 224, 425):
        lo, hi = size_limits(bands, 5, 1 / 32, 0.4)
        assert lo <= hi
        if bands >= 5:
            assert lo >= 1
            assert lo * 5 <= bands <= hi * 5  # some partition into 5 intervals fits the limits
            bounds = find_partition(np.eye(bands), 5, lo, hi)
            sizes = np.diff(bounds)
            assert bounds[0] == 0 and bounds[-1] == bands and len(sizes) == 5
            assert sizes.min() >= lo and sizes.max() <= hi
    assert size_limits(224, 5, 1 / 32, 0.4) == (7, 90)  # 224 / 32 = 7, ceil(224 * 0.4) = 90
    assert size_limits(7, 5, 1 / 32, 0.4) == (1, 3)     # relaxed: ceil(7 * 0.4) = 3 admits 5 groups


def test_fallback_rescales_the_nearest_stored_partition():
    parts = {"200": [0, 40, 100, 150, 160, 200], "100": [0, 10, 20, 30, 40, 100]}
    assert partition_for(parts, 200) == parts["200"]
    assert partition_for(parts, 400) == [0, 80, 200, 300, 320, 400]  # nearest is 200: boundaries x 2
    assert partition_for(parts, 150) == [0, 30, 75, 112, 120, 150]  # tie 100/200: the larger
    assert partition_for(parts, 110) == [0, 11, 22, 33, 44, 110]
    tiny = partition_for(parts, 3)
    assert tiny[0] == 0 and tiny[-1] == 3 and len(tiny) == 6 and all(np.diff(tiny) >= 0)
    assert rescale_partition([0, 1, 2, 3, 4, 5], 2) == [0, 0, 1, 1, 2, 2]
    with pytest.raises(InputError):
        partition_for({}, 10)


def test_training_stores_one_partition_per_band_count_and_codes_any_band_count(tmp_path):
    from engine.codecs.band_cluster import BandClusterCodec
    from engine.training import TrainConfig, train

    a = (block_cube([0, 12, 30, 37, 45, 60], 24, 24) * 1000).astype("int16")
    b = (block_cube([0, 5, 10, 20, 30, 40], 24, 24, seed=1) * 1000).astype("uint16")
    # The raw-band variant codes the bands themselves; the stage-input one (the recipe's default) keeps the
    # same partitions as its clustered KLT's intervals and gives each interval's model its planes.
    rec = train(TrainConfig("band-cluster", 2, steps=2, batch=1, device="cpu", arch={"components": 0, "center": True}),
                [("sensa_1.tif", a, None), ("sensb_1.tif", b, None)], tmp_path)
    parts = rec["recipe"]["arch"]["partitions"]
    assert parts == {"40": [0, 5, 10, 20, 30, 40], "60": [0, 12, 30, 37, 45, 60]}
    planes = BandClusterCodec.prepare_arch(dict(BandClusterCodec.recipes[2]["arch"]),
                                           [("sensa_1.tif", a.astype(np.float32), None)])
    assert planes["band_partitions"] == {"60": parts["60"]} and planes["partitions"] == {"20": [0, 4, 8, 12, 16, 20]}
    codec = BandClusterCodec(2, device="cpu", weights=tmp_path / "band-cluster-q2.pt")
    assert codec.model.partitions == parts
    for bands in (60, 61, 7, 3):  # stored, and three fallbacks (the last with empty intervals)
        tile = np.random.default_rng(bands).random((bands, 20, 18)).astype(np.float32)
        data = codec.encode_tile(tile)
        out = BandClusterCodec(2, device="cpu", weights=tmp_path / "band-cluster-q2.pt").decode_tile(data, tile.shape)
        assert out.shape == tile.shape and np.isfinite(out).all()
        # One string per band, and one for the tile's per-band means (the recipe's ``center``).
        assert codec.model.strings_per_group(bands)[-1] == 1
        assert sum(codec.model.strings_per_group(bands)) == bands + 1
    # The means travel as float16 in the last string; the decoder adds them back from the bytes.
    from engine.format.strings import pack_strings, unpack_strings
    from engine.errors import FormatError

    tile = np.random.default_rng(0).random((60, 20, 18)).astype(np.float32)
    shape, groups = unpack_strings(codec.encode_tile(tile), 4096)
    np.testing.assert_array_equal(np.frombuffer(groups[-1][0], "<f2"), tile.mean((1, 2)).astype("<f2"))
    base = codec.decode_tile(pack_strings(shape, groups), tile.shape)
    up = (np.frombuffer(groups[-1][0], "<f2") + np.float16(0.25)).astype("<f2").tobytes()
    np.testing.assert_allclose(codec.decode_tile(pack_strings(shape, [*groups[:-1], [up]]), tile.shape) - base,
                               0.25, atol=1e-3)
    with pytest.raises(FormatError, match="means"):
        codec.decode_tile(pack_strings(shape, [*groups[:-1], [up[:-2]]]), tile.shape)


def test_based_band_cluster_at_init_is_the_haar_base_and_a_uniform_quantiser():
    """The shipped variant before training: each plane's 4 x 4 Haar subbands / step, rounded, and back;
    the planes are in the KLT's orthonormal units, one string per interval."""
    import torch

    from engine.codecs.band_cluster import BandClusterCodec
    from engine.models.stage_base import HaarBlocks

    a = block_cube([0, 12, 30, 37, 45, 60], 24, 24)
    arch = BandClusterCodec.prepare_arch(dict(BandClusterCodec.recipes[2]["arch"]), [("sensa_1.tif", a, None)])
    assert arch["whiten"] is False and arch["base_step"] == round(0.0416, 4)
    model = BandClusterCodec.build_model(arch).eval()
    model.entropy_bottleneck.apply(lambda m: m.update(force=True) if hasattr(m, "_quantized_cdf") else None)
    planes = BandClusterCodec.scene_planes(arch, a, None)
    w = torch.from_numpy(planes.whiten(a)[:, :24, :24])[None]
    with torch.no_grad():
        groups, shape = model.compress(w)
        out = model.decompress(groups, shape, arch["components"], (24, 24), "cpu")
    assert shape == (6, 6) and [len(g) for g in groups] == [1] * 5
    base, step = HaarBlocks(arch["components"], 2), arch["base_step"]
    expected = base.inverse(torch.round(base(w) / step) * step)
    assert torch.allclose(out, expected, atol=1e-5)
    # Orthonormal units: the error of a plane is at most half a step per subband.
    assert (out - w).abs().max() <= 2 * step


def test_equal_width_ablation_and_refinements_left_at_zero():
    from engine.codecs.band_cluster import BandClusterCodec

    a = block_cube([0, 12, 30, 37, 45, 60], 24, 24)
    arch = {**BandClusterCodec.recipes[2]["arch"], "equal_width": True, "refine": False}
    arch = BandClusterCodec.prepare_arch(arch, [("sensa_1.tif", a, None)])
    assert arch["band_partitions"] == {"60": [0, 12, 24, 36, 48, 60]}
    model = BandClusterCodec.build_model(arch)
    frozen = [n for n, p in model.named_parameters() if not p.requires_grad]
    assert frozen and all(".refine." in n for n in frozen)
    assert not any(p.requires_grad for t in model.g_a for p in t.refine.parameters())
