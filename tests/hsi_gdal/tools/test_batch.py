"""``hsic batch`` on a Dask LocalCluster with two workers: mirror, manifest, resume, one-line errors."""

import csv
import json
import os

from engine.format.container import open_hsic
from engine.registry import DEFAULT_CODEC, get_info
from hsi_gdal.tools.batch import find_rasters, is_complete, run_batch
from hsi_gdal.tools.cli import main

DEFAULT_QUALITY = get_info(DEFAULT_CODEC).default_quality


def test_batch_mirrors_tree_writes_manifest_and_resumes(make_raster, tmp_path, capsys, monkeypatch):
    src = tmp_path / "in"
    (src / "a" / "b").mkdir(parents=True)
    for i, rel in enumerate(["one.tif", "a/two.tif", "a/b/three.tif"]):
        os.replace(make_raster(name=f"r{i}.tif", bands=6, rows=20, cols=18, seed=i), src / rel)
    (src / "a" / "broken.tif").write_bytes(b"not a raster")
    (src / "notes.txt").write_text("ignored")
    out = tmp_path / "out"

    recs = run_batch(src, out, workers=2, processes=False, device="cpu")
    by_input = {os.path.relpath(r["input"], src): r for r in recs}
    assert sorted(by_input) == ["a/b/three.tif", "a/broken.tif", "a/two.tif", "one.tif"]
    assert by_input["a/broken.tif"]["status"] == "failed" and "\n" not in by_input["a/broken.tif"]["error"]
    for rel in ("one", "a/two", "a/b/three"):
        rec = by_input[rel + ".tif"]
        assert rec["status"] == "compressed" and rec["output"] == str(out / (rel + ".hsic"))
        assert os.path.exists(rec["output"] + ".vrt")
        with open_hsic(rec["output"]) as r:  # the true rate: file size incl. header
            assert rec["bytes"] == os.path.getsize(rec["output"])
            assert abs(rec["bpppc"] - 8 * rec["bytes"] / (20 * 18 * 6)) < 1e-9
            assert r.header.bands == 6
        assert rec["psnr_db"] > 20
    assert json.loads((out / "manifest.json").read_text()) == sorted(recs, key=lambda r: r["input"])
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert len(rows) == 4 and float(rows[0]["bpppc"]) > 0 or rows[0]["status"] == "failed"

    # A crash mid-way: one output cut short, one lost, a stale .partial left: the next run finishes them.
    two = out / "a" / "two.hsic"
    two.write_bytes(two.read_bytes()[:-5])
    os.remove(out / "one.hsic")
    (out / "one.hsic.partial").write_bytes(b"half")
    mtime = os.path.getmtime(out / "a" / "b" / "three.hsic")
    assert not is_complete(two, DEFAULT_CODEC, DEFAULT_QUALITY)

    import functools

    import hsi_gdal.tools.batch

    # Thread workers keep the test fast (process workers would each import torch and GDAL).
    monkeypatch.setattr(hsi_gdal.tools.batch, "run_batch", functools.partial(run_batch, processes=False))
    code = main(["batch", str(src), str(out), "--workers", "2", "--device", "cpu", "-q"])
    err = capsys.readouterr().err
    assert code == 2 and "broken.tif" in err and "1 of 4 files failed" in err
    assert len([line for line in err.splitlines() if line.strip()]) == 2  # one line per failure + summary
    recs2 = {os.path.relpath(r["input"], src): r["status"] for r in json.loads((out / "manifest.json").read_text())}
    assert recs2 == {"one.tif": "compressed", "a/two.tif": "compressed", "a/b/three.tif": "skipped",
                     "a/broken.tif": "failed"}
    assert os.path.getmtime(out / "a" / "b" / "three.hsic") == mtime  # complete outputs untouched
    assert not (out / "one.hsic.partial").exists()
    assert is_complete(two, DEFAULT_CODEC, DEFAULT_QUALITY) and is_complete(out / "one.hsic", DEFAULT_CODEC, DEFAULT_QUALITY)
    # Outputs inside the input tree are never taken for inputs.
    assert all(p.suffix == ".tif" for p in find_rasters(tmp_path))


def test_batch_user_errors_are_one_line(tmp_path, capsys):
    assert main(["batch", str(tmp_path / "missing"), str(tmp_path / "o"), "-q"]) == 2
    assert capsys.readouterr().err.count("\n") == 1
    (tmp_path / "empty").mkdir()
    assert main(["batch", str(tmp_path / "empty"), str(tmp_path / "o"), "-q", "--quality", "9"]) == 2
    assert "quality" in capsys.readouterr().err
