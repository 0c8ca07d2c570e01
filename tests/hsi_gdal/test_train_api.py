"""hsi_gdal.train, the call behind `hsic train` and hsic:train: a folder or a list of rasters, a folder or
a .pt destination, the same weights either way; options checked before any work."""

import json

import pytest

import hsi_gdal
from engine.registry import get_info


def test_folder_and_file_destinations_write_the_same_weights(make_raster, tmp_path):
    make_raster("aviris_a.tif", bands=10, rows=20, cols=24)
    make_raster("enmap_b.tif", bands=10, rows=20, cols=24, seed=1)
    rasters = sorted(str(p) for p in tmp_path.glob("*.tif"))

    rec = hsi_gdal.train("cae1d", 1, tmp_path, tmp_path / "runs", steps=3)
    assert rec["weights_file"] == "cae1d-q1.pt" and rec["data"]["names"] == ["aviris_a.tif", "enmap_b.tif"]
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["cae1d-q1.json", "cae1d-q1.pt"]

    dst = tmp_path / "mine.pt"
    rec2 = hsi_gdal.train("cae1d", 1, rasters, dst, steps=3)
    assert dst.read_bytes() == (tmp_path / "runs" / "cae1d-q1.pt").read_bytes()
    assert json.loads((tmp_path / "mine.json").read_text())["final"] == rec2["final"] == rec["final"]
    assert hsi_gdal.record_file(dst) == str(tmp_path / "mine.json")


def test_cancelled_file_destination_leaves_nothing(make_raster, tmp_path):
    scene = make_raster("s.tif")
    with pytest.raises(hsi_gdal.CancelledError):
        hsi_gdal.train("cae1d", None, [scene], tmp_path / "w.pt", steps=20, progress=lambda step, total, m: step < 2)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]


def test_options_are_checked_before_any_work(make_raster, tmp_path):
    scene = make_raster("s.tif")
    assert hsi_gdal.check_train_options("cae1d") == get_info("cae1d").default_quality
    with pytest.raises(hsi_gdal.CodecError, match="quality 9"):
        hsi_gdal.train("cae1d", 9, [scene], tmp_path / "w.pt")
    with pytest.raises(hsi_gdal.InputError, match="does not exist"):
        hsi_gdal.train("cae1d", 1, [scene], tmp_path / "w.pt", init=tmp_path / "nope.pt")
    with pytest.raises(hsi_gdal.HSICIOError, match="folder"):
        hsi_gdal.train("cae1d", 1, [scene], tmp_path / "missing" / "w.pt")
    (tmp_path / "empty").mkdir()
    with pytest.raises(hsi_gdal.InputError, match="no training rasters"):
        hsi_gdal.train("cae1d", 1, tmp_path / "empty", tmp_path / "runs")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty", "s.tif"]
    assert hsi_gdal.installed_weights("cae1d", 1).endswith(get_info("cae1d").weights[1])
