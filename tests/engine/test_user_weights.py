"""A user's weights file: compress records it, decoding finds it (recorded path, beside the file) or refuses."""

import shutil

import numpy as np
import pytest

from engine.errors import CancelledError, CodecError
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
from engine.training import TrainConfig, train
from engine.weight_files import WEIGHTS_DIR, file_sha256

CUBE = (1000 + 500 * np.random.default_rng(0).random((9, 20, 24))).astype("int16")


@pytest.fixture(scope="module")
def weights(tmp_path_factory):
    out = tmp_path_factory.mktemp("w")
    rec = train(TrainConfig("cae1d", 1, steps=3, batch=8, device="cpu"), [("x_a.tif", CUBE, None)], out,
                init=WEIGHTS_DIR / "cae1d-q1.pt")
    assert rec["init"]["sha256"] == file_sha256(WEIGHTS_DIR / "cae1d-q1.pt")
    return out / "cae1d-q1.pt"


def compress(dst, weights):
    return compress_scene(SceneInfo(20, 24, 9, "int16"), lambda y, x, h, w: CUBE[:, y:y + h, x:x + w],
                          str(dst), "cae1d", 1, device="cpu", weights=weights)


def test_header_records_the_weights_and_decoding_finds_them(weights, tmp_path):
    h = compress(tmp_path / "a.hsic", weights)
    assert h.weights_sha256 == file_sha256(weights) != file_sha256(WEIGHTS_DIR / "cae1d-q1.pt")
    assert h.codec_options == {"weights_file": "cae1d-q1.pt", "weights_path": str(weights)}
    dec = SceneDecoder(str(tmp_path / "a.hsic"), device="cpu")
    assert dec.codec.weights_path == weights
    # The cube is uniform noise: measured 2026-12-03, a mean error of 113.5 with these weights, where
    # sending the cube's mean value alone gives 125.1. And the installed weights decode something else.
    got = dec.read().astype(float)
    assert np.abs(got - CUBE).mean() < 119 < np.abs(CUBE - CUBE.mean()).mean()
    installed = compress_scene(SceneInfo(20, 24, 9, "int16"), lambda y, x, h, w: CUBE[:, y:y + h, x:x + w],
                               str(tmp_path / "b.hsic"), "cae1d", 1, device="cpu")
    assert installed.weights_sha256 != h.weights_sha256
    other = SceneDecoder(str(tmp_path / "b.hsic"), device="cpu")
    assert not np.array_equal(other.read(), dec.read())


def test_moved_with_its_weights_decodes_moved_without_them_is_refused(weights, tmp_path):
    compress(tmp_path / "a.hsic", shutil.copy(weights, tmp_path / "mine.pt"))
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(tmp_path / "a.hsic", moved / "a.hsic")
    shutil.move(tmp_path / "mine.pt", tmp_path / "gone.pt")
    with pytest.raises(CodecError, match=r"weights file 'mine.pt'.*not found.*beside the .hsic"):
        SceneDecoder(str(moved / "a.hsic"), device="cpu")
    assert SceneDecoder(str(moved / "a.hsic"), device="cpu", weights=tmp_path / "gone.pt").read().shape == CUBE.shape
    with pytest.raises(CodecError, match="is not the one"):
        SceneDecoder(str(moved / "a.hsic"), device="cpu", weights=WEIGHTS_DIR / "cae1d-q1.pt")
    shutil.move(tmp_path / "gone.pt", moved / "mine.pt")
    assert SceneDecoder(str(moved / "a.hsic"), device="cpu").codec.weights_path == moved / "mine.pt"


def test_missing_weights_file_for_compress_is_a_codec_error(tmp_path):
    with pytest.raises(CodecError, match="does not exist"):
        compress(tmp_path / "a.hsic", tmp_path / "nope.pt")
    assert not list(tmp_path.iterdir())


def test_training_cancel_writes_nothing(tmp_path):
    with pytest.raises(CancelledError):
        train(TrainConfig("cae1d", 1, steps=10, batch=8, device="cpu"), [("x_a.tif", CUBE, None)], tmp_path,
              progress=lambda step, total, m: step < 2)
    assert not list(tmp_path.iterdir())


def test_diverged_training_stops_and_writes_no_weights(tmp_path, monkeypatch):
    import torch

    from engine.codecs.cae1d import Cae1d

    def nan_after_two(model, out, xb, vb, recipe, calls=[]):
        calls.append(1)
        loss = ((out["x_hat"] - xb) ** 2).mean()
        return (loss * torch.tensor(float("nan")) if len(calls) > 2 else loss), {"mse": loss.item()}

    monkeypatch.setattr(Cae1d, "training_loss", staticmethod(nan_after_two), raising=False)
    with pytest.raises(CodecError, match="diverged at step 3"):
        train(TrainConfig("cae1d", 1, steps=10, batch=8, device="cpu"), [("x_a.tif", CUBE, None)], tmp_path)
    assert not list(tmp_path.glob("*.pt")) and not list(tmp_path.glob("*.json"))


def test_half_weights_load_as_float32_and_round_trip(tmp_path):
    """save_weights(half=True): float16 on disk, float32 in the model, same bytes encoder and decoder."""
    import torch

    from engine.codecs.learned import load_weights, save_weights
    from engine.codecs.spatial import Bmshj2018Factorized
    from engine.registry import get_codec
    from tests.engine.test_codecs import smooth_tile

    arch = {"N": 8, "M": 8, "adapter": 4}
    torch.manual_seed(0)
    model = Bmshj2018Factorized.build_model(arch)
    save_weights(model, arch, tmp_path / "full.pt")
    save_weights(model, arch, tmp_path / "bmshj2018-factorized-q2.pt", half=True)
    blob = torch.load(tmp_path / "bmshj2018-factorized-q2.pt", weights_only=True)["state_dict"]
    assert blob["g_a.0.weight"].dtype == torch.float16
    assert blob["entropy_bottleneck.quantiles"].dtype == torch.float32  # the coder's tables stay exact
    assert (tmp_path / "bmshj2018-factorized-q2.pt").stat().st_size < 0.7 * (tmp_path / "full.pt").stat().st_size
    half = load_weights(Bmshj2018Factorized.build_model, tmp_path / "bmshj2018-factorized-q2.pt")
    assert all(p.dtype == torch.float32 for p in half.parameters())
    assert torch.equal(half.g_a[0].weight, model.g_a[0].weight.half().float())
    tile = smooth_tile(20, 16, 16)
    w = tmp_path / "bmshj2018-factorized-q2.pt"
    data = get_codec("bmshj2018-factorized", 2, device="cpu", weights=w).encode_tile(tile)
    out = get_codec("bmshj2018-factorized", 2, device="cpu", weights=w).decode_tile(data, tile.shape)
    assert out.shape == tile.shape and np.isfinite(out).all()


def test_retired_weights_are_found_in_the_archive(weights, tmp_path, monkeypatch):
    from engine import weight_files

    installed = tmp_path / "weights"
    installed.mkdir()
    shutil.copy(WEIGHTS_DIR / "cae1d-q1.pt", installed / "cae1d-q1.pt")
    monkeypatch.setattr(weight_files, "WEIGHTS_DIR", installed)
    old = compress(tmp_path / "old.hsic", None)
    before = SceneDecoder(str(tmp_path / "old.hsic"), device="cpu").read()

    # Retrain: the old file goes to the archive under its digest, other weights take its place.
    archived = weight_files.archive_path("cae1d-q1.pt", old.weights_sha256)
    assert archived == installed / "archive" / f"cae1d-q1-{old.weights_sha256[:12]}.pt"
    archived.parent.mkdir()
    shutil.move(installed / "cae1d-q1.pt", archived)
    shutil.copy(weights, installed / "cae1d-q1.pt")
    assert file_sha256(installed / "cae1d-q1.pt") != old.weights_sha256

    dec = SceneDecoder(str(tmp_path / "old.hsic"), device="cpu")
    assert dec.codec.weights_path == archived
    assert np.array_equal(dec.read(), before)
    new = compress(tmp_path / "new.hsic", None)
    assert new.weights_sha256 == file_sha256(weights)
    assert SceneDecoder(str(tmp_path / "new.hsic"), device="cpu").codec.weights_path == installed / "cae1d-q1.pt"

    archived.unlink()  # without the archived copy, the old file is refused
    with pytest.raises(CodecError, match="other weights"):
        SceneDecoder(str(tmp_path / "old.hsic"), device="cpu")
