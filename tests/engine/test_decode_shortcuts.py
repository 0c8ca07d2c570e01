"""The decode path's shortcuts around compressai give exactly compressai's results
(docs/benchmarks/seed_decode_speed.md), and codecs of the same weights share one loaded model."""

import torch
from compressai.entropy_models import EntropyBottleneck, EntropyModel

from engine.models.layers import rans_decompress
from engine.models.spatial import Bmshj2018
from engine.registry import get_codec
from engine.weight_files import file_sha256


def _hyperprior():
    model = Bmshj2018(N=8, M=8, hyperprior=True)
    model.update_tables()
    return model


def test_scale_indexes_are_compressais():
    model = _hyperprior()
    gc = model.gaussian_conditional
    table = gc.scale_table
    torch.manual_seed(0)
    cases = [torch.rand(1, 64, 9, 7) * 300, torch.exp(torch.randn(2, 8, 5, 5) * 3), table[None, :, None, None],
             torch.nextafter(table, torch.tensor(0.0))[None, :, None, None],
             torch.nextafter(table, torch.tensor(1e9))[None, :, None, None],
             torch.tensor([0.0, -1.0, float("nan"), float("inf"), -float("inf"), 1e-30])[None, :, None, None]]
    for scales in cases:
        assert torch.equal(model.scale_indexes(scales), gc.build_indexes(scales))


def test_rans_decompress_is_compressais():
    torch.manual_seed(1)
    model = _hyperprior()
    gc = model.gaussian_conditional
    y = torch.randn(2, 8, 6, 5) * 4
    indexes = model.scale_indexes(torch.rand(2, 8, 6, 5) * 5)
    strings = gc.compress(y, indexes)
    ref = gc.decompress(strings, indexes, torch.float32)
    assert torch.equal(rans_decompress(gc, strings, indexes, torch.float32), ref)
    # A factorized prior with per-element channel indexes and medians (mdim-drf's masked latent).
    eb = EntropyBottleneck(4)
    eb.update(force=True)
    index = torch.randint(0, 4, (1, 50), dtype=torch.int32)
    means = eb.quantiles[:, 0, 1].detach()[index.long()]
    values = torch.randn(1, 50) * 3
    strings = EntropyModel.compress(eb, values, index, means)
    ref = EntropyModel.decompress(eb, strings, index, torch.float32, means)
    assert torch.equal(rans_decompress(eb, strings, index, torch.float32, means), ref)


def test_codecs_of_the_same_weights_share_their_model():
    a, b = get_codec("mdim-drf", 2, "cpu"), get_codec("mdim-drf", 2, "cpu")
    assert a.model is b.model
    assert get_codec("mdim-drf", 1, "cpu").model is not a.model
    assert a.weights_sha256 == file_sha256(a.weights_path)
