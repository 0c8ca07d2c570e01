"""Training writes loadable weights with their record, reproducibly; sensor-balanced scene draws."""

import json

import numpy as np
import pytest

from engine.codecs.cae1d import Cae1d
from engine.codecs.learned import load_weights
from engine.errors import CodecError, InputError
from engine.training import TrainConfig, prepare_scene, sensor_groups, train


def scenes():
    rng = np.random.default_rng(0)
    cube = (1000 + 500 * rng.random((30, 8, 9))).astype("int16")
    cube[4] = -32768  # an all-nodata band, as in EnMAP
    return [("enmap_x.tif", cube, -32768), ("aviris_y.tif", (rng.random((17, 6, 5)) * 900).astype("uint16"), None)]


def test_sensor_groups_balance_sensors():
    assert sensor_groups(["aviris_a.tif", "aviris_b.tif", "enmap_c.tif", "/x/aviris_d.tif"]) == [[0, 1, 3], [2]]


def test_prepare_scene_normalises_valid_samples_to_unit_range():
    x, valid = prepare_scene(*scenes()[0][1:])
    assert x.dtype == np.float32 and not valid[4].any()
    assert x[valid].min() == 0 and x[valid].max() == pytest.approx(1)
    assert np.isfinite(x).all()


def test_train_writes_weights_and_record_reproducibly(tmp_path):
    cfg = TrainConfig("cae1d", 1, steps=6, batch=8, seed=3, device="cpu")
    rec = train(cfg, scenes(), tmp_path / "a")
    train(cfg, scenes(), tmp_path / "b")
    stored = json.loads((tmp_path / "a" / "cae1d-q1.json").read_text())
    assert stored["config"]["seed"] == 3 and stored["config"]["steps"] == 6
    assert stored["data"] == {"count": 2, "names": ["enmap_x.tif", "aviris_y.tif"]}
    assert stored == rec
    assert (tmp_path / "a" / "cae1d-q1.pt").read_bytes() == (tmp_path / "b" / "cae1d-q1.pt").read_bytes()
    model = load_weights(Cae1d.build_model, tmp_path / "a" / "cae1d-q1.pt")
    assert model.entropy_bottleneck._quantized_cdf.numel() > 0


def test_train_rejects_bad_requests(tmp_path):
    with pytest.raises(InputError):
        train(TrainConfig("cae1d", 1, steps=1), [], tmp_path)
    with pytest.raises(CodecError):
        train(TrainConfig("cae1d", 7, steps=1), scenes(), tmp_path)


def test_corrupt_weights_file_is_a_codec_error(tmp_path):
    bad = tmp_path / "w.pt"
    bad.write_bytes(b"not a torch file")
    with pytest.raises(CodecError, match="cannot load weights"):
        load_weights(Cae1d.build_model, bad)


class _Stop(Exception):
    pass


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    cfg = TrainConfig("cae1d", 1, steps=7, batch=8, seed=1, device="cpu", checkpoint_every=3)
    train(cfg, scenes(), tmp_path / "whole")

    def stop_at_5(step, total, m):
        if step == 5:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, scenes(), tmp_path / "cut", progress=stop_at_5)
    assert (tmp_path / "cut" / "cae1d-q1.ckpt").is_file() and not (tmp_path / "cut" / "cae1d-q1.pt").exists()
    steps = []
    rec = train(TrainConfig(**{**cfg.__dict__, "resume": True}), scenes(), tmp_path / "cut",
                progress=lambda step, total, m: steps.append(step))
    assert steps == [4, 5, 6, 7] and rec["resumed_at"] == 4  # the checkpoint of step 3
    assert not (tmp_path / "cut" / "cae1d-q1.ckpt").exists()
    assert (tmp_path / "cut" / "cae1d-q1.pt").read_bytes() == (tmp_path / "whole" / "cae1d-q1.pt").read_bytes()


def test_resume_refuses_another_runs_checkpoint(tmp_path):
    cfg = TrainConfig("cae1d", 1, steps=4, batch=8, device="cpu", checkpoint_every=2)

    def stop(step, total, m):
        if step == 3:
            raise _Stop

    with pytest.raises(_Stop):
        train(cfg, scenes(), tmp_path, progress=stop)
    with pytest.raises(InputError, match="another run"):
        train(TrainConfig("cae1d", 1, steps=9, batch=8, device="cpu", resume=True), scenes(), tmp_path)


def test_fine_tuning_starts_from_given_weights_and_keeps_their_architecture(tmp_path):
    train(TrainConfig("cae1d", 1, steps=3, batch=8, device="cpu"), scenes(), tmp_path / "base")
    base = tmp_path / "base" / "cae1d-q1.pt"
    rec = train(TrainConfig("cae1d", 1, steps=2, batch=8, device="cpu", init=str(base)), scenes(), tmp_path / "ft")
    assert rec["config"]["init"] == str(base) and rec["init"]["path"] == str(base)
    # The file's architecture is kept, even where the target quality's recipe differs (q2: larger latent).
    rec = train(TrainConfig("cae1d", 2, steps=2, batch=8, device="cpu", init=str(base)), scenes(), tmp_path / "x")
    assert rec["recipe"]["arch"] == Cae1d.recipes[1]["arch"] != Cae1d.recipes[2]["arch"]


@pytest.mark.parametrize("codec_id", ["sscnet", "cae3d", "bmshj2018-factorized", "bmshj2018-hyperprior"])
def test_spatial_codecs_train_a_few_steps(tmp_path, codec_id):
    import torch

    from engine.registry import codec_class

    cls = codec_class(codec_id)
    for q in (1, 11) if 11 in cls.info.qualities else (1,):
        rec = train(TrainConfig(codec_id, q, steps=2, batch=2, device="cpu"), scenes(), tmp_path)
        assert np.isfinite(rec["final"]["loss"]) and rec["final"]["loss"] > 0
        model = load_weights(cls.build_model, tmp_path / f"{codec_id}-q{q}.pt")
        assert model.entropy_bottleneck._quantized_cdf.numel() > 0
        # The two steps moved the weights away from their initialisation (the same seed builds it), and
        # every trained weight is finite.
        torch.manual_seed(0)
        start = cls.build_model(rec["recipe"]["arch"]).state_dict()
        trained = model.state_dict()
        moved = [k for k, v in start.items() if v.is_floating_point() and k in trained
                 and v.shape == trained[k].shape and not torch.equal(v, trained[k])]
        assert any(k.startswith(("g_a", "g_s", "analysis", "synthesis", "adapter")) for k in moved), moved[:5]
        assert all(torch.isfinite(v).all() for v in trained.values() if v.is_floating_point())
