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
    assert [d["name"] for d in stored["data"]] == ["enmap_x.tif", "aviris_y.tif"]
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
