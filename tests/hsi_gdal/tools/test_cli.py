"""The hsic command: each subcommand through main(), user errors as one line and a non-zero exit."""

import json

import pytest

from hsi_gdal.tools.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_compress_info_eval_decompress_json(capsys, tmp_path):
    from tests.conftest import SAMPLE

    src = str(SAMPLE)  # real EnMAP: 224 bands x 64 rows x 96 cols
    dst = str(tmp_path / "c.hsic")
    code, out, _ = run(capsys, "compress", src, dst, "--quality", "3", "--json", "--device", "cpu")
    assert code == 0
    rec = json.loads(out)
    assert rec["codec"] == "cae1d" and rec["quality"] == 3
    assert rec["bpppc"] == pytest.approx(rec["bytes"] * 8 / (224 * 64 * 96))
    code, out, _ = run(capsys, "info", dst, "--json")
    info = json.loads(out)
    assert code == 0 and info["bands"] == 224 and info["codec"] == "cae1d"
    code, out, _ = run(capsys, "eval", src, dst, "--json")
    ev = json.loads(out)
    assert code == 0 and ev["psnr_db"] > 35 and 0 < ev["ssim"] <= 1 and ev["bpppc"] == rec["bpppc"]
    code, out, _ = run(capsys, "eval", src, dst)
    assert "PSNR (data-range peak)" in out and "SAM" in out
    code, _, _ = run(capsys, "decompress", dst, str(tmp_path / "d.tif"), "-q")
    assert code == 0 and (tmp_path / "d.tif").exists()


def test_compress_to_a_rate_target(capsys, make_raster, tmp_path):
    src, dst = make_raster(bands=12, rows=40, cols=30), str(tmp_path / "c.hsic")
    code, out, _ = run(capsys, "compress", src, dst, "--bpppc", "100", "--json", "--device", "cpu")
    rec = json.loads(out)
    assert code == 0 and rec["quality"] == 3  # every quality fits: the best one is chosen
    code, out, _ = run(capsys, "compress", src, dst, "--bpppc", str(rec["bpppc"] * 0.999), "--json")
    low = json.loads(out)
    assert code == 0 and low["quality"] < 3 and low["bpppc"] <= rec["bpppc"] * 0.999
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.hsic", "c.hsic.qml", "c.hsic.vrt", "cube.tif"]


def test_compress_with_an_error_bound(capsys, make_raster, tmp_path):
    from osgeo import gdal

    src = make_raster(bands=12, rows=20, cols=16)
    dst = str(tmp_path / "c.hsic")
    code, out, _ = run(capsys, "compress", src, dst, "--quality", "1", "--max-abs-error", "4", "--json", "-q",
                       "--device", "cpu")
    rec = json.loads(out)
    assert code == 0 and rec["max_abs_error"] == 4.0
    code, out, _ = run(capsys, "info", dst)
    assert code == 0 and "max abs error 4" in out
    code, _, _ = run(capsys, "decompress", dst, str(tmp_path / "d.tif"), "-q")
    ref = gdal.Open(src).ReadAsArray().astype(int)
    assert code == 0 and 0 < abs(gdal.Open(str(tmp_path / "d.tif")).ReadAsArray().astype(int) - ref).max() <= 4
    code, out, _ = run(capsys, "compress", src, dst, "--max-abs-error", "0", "-q", "--device", "cpu")
    assert code == 0 and "|error| <= 0" in out
    code, _, _ = run(capsys, "decompress", dst, str(tmp_path / "l.tif"), "-q")
    assert (gdal.Open(str(tmp_path / "l.tif")).ReadAsArray() == gdal.Open(src).ReadAsArray()).all()


def test_codecs_json(capsys):
    code, out, _ = run(capsys, "codecs", "--json")
    ids = {c["id"]: c for c in json.loads(out)["codecs"]}
    assert code == 0 and ids["cae1d"]["default"] and len(ids["cae1d"]["qualities"]) >= 3


@pytest.mark.parametrize("argv, message", [
    (["compress", "MISSING.tif", "OUT.hsic"], "no such file"),
    (["compress", "{src}", "{tmp}/o.hsic", "--codec", "nope"], "unknown codec"),
    (["compress", "{src}", "{tmp}/o.hsic", "--quality", "9"], "no quality 9"),
    (["compress", "{text}", "{tmp}/o.hsic"], "not a raster"),
    (["compress", "{src}", "{tmp}/o.hsic", "--bpppc", "0.001", "-q"], "no quality meets the target"),
    (["compress", "{src}", "{tmp}/o.hsic", "--min-psnr", "300", "-q"], "no quality meets the target"),
    (["compress", "{src}", "{tmp}/o.hsic", "--quality", "2", "--max-sam", "3"], "not both"),
    (["compress", "{src}", "{tmp}/o.hsic", "--bpppc", "-1"], "bpppc must be a positive number"),
    (["compress", "{src}", "{tmp}/o.hsic", "--max-abs-error", "-1"], "max_abs_error must be a finite number >= 0"),
    (["compress", "{src}", "{tmp}/o.hsic", "--max-abs-error", "nan"], "max_abs_error must be a finite number >= 0"),
    (["compress", "{src}", "{tmp}/o.hsic", "--max-abs-error", "inf"], "max_abs_error must be a finite number >= 0"),
    (["compress", "{src}", "{tmp}/o.hsic", "--max-abs-error", "2", "--bpppc", "3"], "cannot be combined"),
    (["compress", "{src}", "{tmp}/o.hsic", "--max-abs-error", "2", "--min-psnr", "40"], "cannot be combined"),
    (["decompress", "{text}", "{tmp}/o.tif"], "not a raster"),
    (["decompress", "{fake}", "{tmp}/o.tif"], "not a .hsic file"),
    (["info", "{fake}"], "not a .hsic file"),
    (["eval", "{src}", "MISSING.hsic"], "no such file"),
])
def test_user_errors_are_one_line(capsys, make_raster, tmp_path, argv, message):
    text = tmp_path / "t.txt"
    text.write_text("hello")
    fake = tmp_path / "f.hsic"
    fake.write_bytes(b"GIF89a" + bytes(100))
    subs = {"src": make_raster(), "tmp": str(tmp_path), "text": str(text), "fake": str(fake)}
    code, out, err = run(capsys, *[a.format(**subs) for a in argv])
    assert code != 0
    assert message.lower() in err.lower() and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "o.hsic").exists() and not (tmp_path / "o.tif").exists()


def test_usage_error_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as e:
        main(["compress"])
    assert e.value.code != 0
