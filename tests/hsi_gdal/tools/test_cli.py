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
    code, out, _ = run(capsys, "compress", src, dst, "--codec", "cae1d", "--quality", "3", "--json", "--device", "cpu")
    assert code == 0
    rec = json.loads(out)
    assert rec["codec"] == "cae1d" and rec["quality"] == 3
    assert rec["bpppc"] == pytest.approx(rec["bytes"] * 8 / (224 * 64 * 96))
    code, out, _ = run(capsys, "info", dst, "--json")
    info = json.loads(out)
    assert code == 0 and info["bands"] == 224 and info["codec"] == "cae1d"
    code, out, _ = run(capsys, "eval", src, dst, "--json")
    ev = json.loads(out)
    # Measured 2026-12-03: 50.0 dB, SSIM 0.997, SAM 0.81 deg on the sample at q3.
    assert code == 0 and ev["psnr_db"] > 49 and 0.99 < ev["ssim"] <= 1 and ev["bpppc"] == rec["bpppc"]
    assert ev["sam_deg"] < 1.0
    code, out, _ = run(capsys, "eval", src, dst)
    assert "PSNR (data-range peak)" in out and "SAM" in out
    code, _, _ = run(capsys, "decompress", dst, str(tmp_path / "d.tif"), "-q")
    assert code == 0
    # The decompressed GeoTIFF holds exactly what the .hsic decodes to, with the source's type and grid.
    import numpy as np

    import hsi_gdal

    tif, hsic, ref = hsi_gdal.Open(str(tmp_path / "d.tif")), hsi_gdal.Open(dst), hsi_gdal.Open(src)
    np.testing.assert_array_equal(tif.ReadAsArray(), hsic.ReadAsArray())
    assert tif.dtype == ref.dtype and tif.GetGeoTransform() == ref.GetGeoTransform()
    assert hsi_gdal.evaluate(src, str(tmp_path / "d.tif"))["psnr_db"] == pytest.approx(ev["psnr_db"])


def test_compress_to_a_rate_target(capsys, make_raster, tmp_path):
    src, dst = make_raster(bands=12, rows=40, cols=30), str(tmp_path / "c.hsic")
    code, out, _ = run(capsys, "compress", src, dst, "--codec", "cae1d", "--bpppc", "100", "--json", "--device", "cpu")
    rec = json.loads(out)
    assert code == 0 and rec["quality"] == 3  # every quality fits: the best one is chosen
    code, out, _ = run(capsys, "compress", src, dst, "--codec", "cae1d", "--bpppc", str(rec["bpppc"] * 0.999),
                       "--json")
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
    assert code == 0 and ids["klt"]["default"] and not ids["cae1d"]["default"] and len(ids["cae1d"]["qualities"]) >= 3


@pytest.mark.parametrize("argv, message", [
    (["compress", "MISSING.tif", "OUT.hsic"], "no such file"),
    (["compress", "{src}", "{tmp}/o.hsic", "--codec", "nope"], "unknown codec"),
    (["compress", "{src}", "{tmp}/o.hsic", "--quality", "9"], "no quality 9"),
    (["compress", "{text}", "{tmp}/o.hsic"], "not a raster"),
    (["compress", "{src}", "{tmp}/o.hsic", "--bpppc", "0.001", "-q"], "meets the target"),
    (["compress", "{src}", "{tmp}/o.hsic", "--codec", "cae1d", "--min-psnr", "300", "-q"], "meets the target"),
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


def test_recompressing_a_hsic_file_codes_its_decoded_samples(capsys, make_raster, tmp_path):
    """A .hsic as the input of `hsic compress` (hsi_gdal/source.py): its decoded samples, georeferencing
    and band metadata are what gets coded, exactly as from the GeoTIFF those samples decompress to."""
    import numpy as np

    import hsi_gdal

    src = make_raster(bands=12, rows=20, cols=16)
    a, b, c, tif = (str(tmp_path / n) for n in ("a.hsic", "b.hsic", "c.hsic", "a.tif"))
    assert main(["compress", src, a, "--quality", "1", "--device", "cpu", "-q"]) == 0
    decoded = hsi_gdal.Open(a).ReadAsArray()
    # Losslessly re-coded with another quality: exactly the first file's samples.
    assert main(["compress", a, b, "--quality", "3", "--max-abs-error", "0", "--device", "cpu", "-q"]) == 0
    np.testing.assert_array_equal(hsi_gdal.Open(b).ReadAsArray(), decoded)
    # Lossy: the same file as coding the decompressed GeoTIFF.
    assert main(["compress", a, b, "--quality", "2", "--device", "cpu", "-q"]) == 0
    assert main(["decompress", a, tif, "-q"]) == 0
    assert main(["compress", tif, c, "--quality", "2", "--device", "cpu", "-q"]) == 0
    np.testing.assert_array_equal(hsi_gdal.Open(b).ReadAsArray(), hsi_gdal.Open(c).ReadAsArray())
    first, again = hsi_gdal.Open(a), hsi_gdal.Open(b)
    assert again.header.quality == 2 and again.GetGeoTransform() == first.GetGeoTransform()
    assert again.GetProjection() == first.GetProjection()
    for i in (1, 12):
        x, y = first.GetRasterBand(i), again.GetRasterBand(i)
        assert x.GetMetadata() == y.GetMetadata() and x.GetDescription() == y.GetDescription()
        assert (x.GetScale(), x.GetOffset(), x.GetNoDataValue()) == (y.GetScale(), y.GetOffset(), y.GetNoDataValue())
