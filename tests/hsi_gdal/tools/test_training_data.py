"""Training data sources: a folder of rasters, and HySpecNet-11k's layout on a small fake tree."""

import json

import numpy as np
import pytest
from osgeo import gdal

from engine.errors import InputError
from hsi_gdal.tools.cli import main
from hsi_gdal.tools.training_data import KEPT_BANDS, WATER_VAPOUR_BANDS, hyspecnet_preprocess, hyspecnet_scenes
from hsi_gdal.training import folder_scenes


def _patch(root, tile, patch, cube, kind):
    name = f"tile_{tile:03d}-patch_{patch:02d}"
    folder = root / "patches" / f"tile_{tile:03d}" / name
    folder.mkdir(parents=True)
    if kind == "npy":
        np.save(folder / f"{name}-DATA.npy", cube)
    else:
        ds = gdal.GetDriverByName("GTiff").Create(str(folder / f"{name}-SPECTRAL_IMAGE.TIF"), cube.shape[2],
                                                  cube.shape[1], cube.shape[0], gdal.GDT_Int16)
        ds.WriteArray(cube)
        ds = None
    return f"tile_{tile:03d}/{name}/{name}-DATA.npy"


@pytest.fixture
def hyspecnet(tmp_path):
    """Three 224-band patches (two as TIF, one as raw npy) and one 202-band preprocessed npy."""
    rng = np.random.default_rng(0)
    raw = [rng.integers(-200, 12000, size=(224, 8, 8)).astype(np.int16) for _ in range(3)]
    pre = rng.random((202, 8, 8), dtype=np.float32)
    lines = [_patch(tmp_path, 1, 1, raw[0], "tif"), _patch(tmp_path, 1, 2, raw[1], "tif"),
             _patch(tmp_path, 2, 1, raw[2], "npy"), _patch(tmp_path, 3, 1, pre, "npy")]
    for split, subsets in {"easy": ([0, 2, 3], [1], [1]), "hard": ([0, 1], [2], [3])}.items():
        (tmp_path / "splits" / split).mkdir(parents=True)
        for subset, idx in zip(("train", "val", "test"), subsets):
            (tmp_path / "splits" / split / f"{subset}.csv").write_text("".join(lines[i] + "\n" for i in idx))
    return tmp_path, raw, pre


def test_preprocessing_drops_water_vapour_bands_clips_and_scales():
    assert len(WATER_VAPOUR_BANDS) == 22 and len(KEPT_BANDS) == 202
    cube = np.arange(224, dtype=np.int16)[:, None, None] * np.ones((1, 2, 2), np.int16) * 50 - 100
    out = hyspecnet_preprocess(cube)
    assert out.shape == (202, 2, 2) and out.dtype == np.float32
    assert out[0, 0, 0] == 0  # -100 clipped to 0
    assert out[126, 0, 0] == pytest.approx((141 * 50 - 100) / 10000)  # band 141 follows band 125
    assert out.max() <= 1
    with pytest.raises(InputError, match="224 bands"):
        hyspecnet_preprocess(cube[:200])


def test_hyspecnet_splits_and_file_kinds(hyspecnet):
    root, raw, pre = hyspecnet
    easy = hyspecnet_scenes(root, "easy", "train")
    assert [s.name for s in easy] == ["enmap_tile_001-patch_01", "enmap_tile_002-patch_01",
                                      "enmap_tile_003-patch_01"]
    cubes = [s.load()[0] for s in easy]
    np.testing.assert_allclose(cubes[0], hyspecnet_preprocess(raw[0]))  # from the TIF
    np.testing.assert_allclose(cubes[1], hyspecnet_preprocess(raw[2]))  # from a 224-band npy
    np.testing.assert_array_equal(cubes[2], pre)  # already preprocessed by the benchmark
    assert [s.name for s in hyspecnet_scenes(root, "hard", "test")] == ["enmap_tile_003-patch_01"]


def test_hyspecnet_errors_are_clear(hyspecnet, tmp_path_factory):
    root, _, _ = hyspecnet
    with pytest.raises(InputError, match="split"):
        hyspecnet_scenes(root, "medium")
    with pytest.raises(InputError, match="not a HySpecNet-11k folder"):
        hyspecnet_scenes(tmp_path_factory.mktemp("empty"))
    (root / "splits" / "easy" / "val.csv").write_text("tile_009/tile_009-patch_01/tile_009-patch_01-DATA.npy\n")
    with pytest.raises(InputError, match="missing"):
        hyspecnet_scenes(root, "easy", "val")
    (root / "splits" / "easy" / "val.csv").write_text("../../etc/passwd\n")
    with pytest.raises(InputError, match="inside patches"):
        hyspecnet_scenes(root, "easy", "val")


def test_folder_scenes_find_rasters_recursively(tmp_path, make_raster):
    (tmp_path / "a" / "b").mkdir(parents=True)
    make_raster(tmp_path / "a" / "b" / "x.tif")
    make_raster(tmp_path / "y.tif")
    (tmp_path / "notes.txt").write_text("not a raster")
    scenes = folder_scenes(tmp_path)
    assert [s.name for s in scenes] == ["x.tif", "y.tif"]
    assert scenes[0].load()[0].ndim == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no training rasters"):
        folder_scenes(tmp_path / "empty")
    with pytest.raises(InputError, match="does not exist"):
        folder_scenes(tmp_path / "missing")


def test_cli_trains_on_hyspecnet_tree_and_resumes(hyspecnet, tmp_path, capsys):
    root, _, _ = hyspecnet
    out = tmp_path / "runs"
    args = ["train", "--codec", "cae1d", "--quality", "1", "--dataset", "hyspecnet11k", "--root", str(root),
            "--split", "hard", "--steps", "4", "--batch", "8", "--out", str(out), "--device", "cpu", "-q"]
    assert main(args) == 0
    first = (out / "cae1d-q1.pt").read_bytes()
    record = json.loads((out / "cae1d-q1.json").read_text())
    assert record["data"]["names"] == [s.name for s in hyspecnet_scenes(root, "hard", "train")]
    assert main(args + ["--resume"]) == 0  # no checkpoint left: a fresh run, same result
    assert (out / "cae1d-q1.pt").read_bytes() == first
    again = json.loads((out / "cae1d-q1.json").read_text())
    assert again["final"] == record["final"] and again["resumed_at"] is None
    assert main(["train", "--dataset", "hyspecnet11k", "--root", str(tmp_path / "nope"), "-q"]) == 2
    assert "not a HySpecNet-11k folder" in capsys.readouterr().err
