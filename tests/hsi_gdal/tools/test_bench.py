"""hsic bench: the baselines' bit counting, the bench's use of the shared metrics, BD-rate wiring."""

import json
import math
import os

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from engine.errors import InputError
from hsi_gdal.tools import baselines
from hsi_gdal.tools.bench import bd_rates, run_bench
from hsi_gdal.tools.cli import main


def _empty(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    return out


def _folder_bytes(folder):
    return sum(os.path.getsize(os.path.join(folder, f)) for f in os.listdir(folder))


def test_jpeg2000_counts_every_file_and_hits_the_rate(make_raster, tmp_path):
    src = make_raster(bands=24, rows=64, cols=64)
    out = tmp_path / "j"
    out.mkdir()
    c = baselines.jpeg2000(src, str(out), 1.0)
    assert [os.path.basename(f) for f in c.files] == ["scene.jp2"]
    assert c.n_bytes == _folder_bytes(out) == os.path.getsize(out / "scene.jp2")
    assert c.n_bytes * 8 / (24 * 64 * 64) == pytest.approx(1.0, rel=0.05)  # rate-corrected to the target
    ds = gdal.Open(str(out / "scene.jp2"))
    assert ds.RasterCount == 24 and "32633" in ds.GetProjection() and ds.GetGeoTransform()[1] == 30.0
    assert c.decoded.shape == (24, 64, 64) and c.decoded.dtype == np.int16


def test_jpeg2000_of_a_float_source_counts_its_scale_file(make_raster, tmp_path):
    rng = np.random.default_rng(1)
    cube = (0.3 + 0.1 * rng.standard_normal((8, 32, 32))).astype(np.float32)
    src = make_raster(data=cube, nodata=None)
    out = tmp_path / "j"
    out.mkdir()
    with pytest.raises(InputError, match="empty folder"):
        baselines.jpeg2000(src, str(tmp_path), 2.0)  # holds the source: its bytes would be counted
    c = baselines.jpeg2000(src, str(out), 2.0)
    assert sorted(os.path.basename(f) for f in c.files) == ["scale.bin", "scene.jp2"]
    assert c.n_bytes == os.path.getsize(out / "scene.jp2") + 16
    assert c.decoded.dtype == np.float32 and np.abs(c.decoded - cube).max() < 0.2


def test_pca_jpeg2000_counts_basis_and_mean(make_raster, tmp_path):
    src = make_raster(bands=24, rows=64, cols=64)
    tmp_path = _empty(tmp_path)
    c = baselines.pca_jpeg2000(src, str(tmp_path), 0.5, k=6)
    # pca.bin = u16 bands + u16 k + f64 step + f32 mean[24] + f16 basis[24 x 6]
    assert os.path.getsize(tmp_path / "pca.bin") == 2 + 2 + 8 + 4 * 24 + 2 * 24 * 6
    assert c.n_bytes == _folder_bytes(tmp_path) == (os.path.getsize(tmp_path / "pca.bin")
                                                    + os.path.getsize(tmp_path / "components.jp2"))
    assert c.setting["k"] == 6
    assert gdal.Open(str(tmp_path / "components.jp2")).RasterCount == 6
    again = np.clip(np.rint(baselines.pca_decode(str(tmp_path))), -32768, 32767).astype(np.int16)
    assert np.array_equal(again, c.decoded)  # the decoder needs nothing but the counted files
    ref = hsi_gdal.Open(src).ReadAsArray().astype(np.float64)
    assert 10 * math.log10((ref.max() - ref.min()) ** 2 / np.mean((ref - c.decoded) ** 2)) > 30


def test_pca_budget_below_its_side_information_is_refused(make_raster, tmp_path):
    src = make_raster(bands=24, rows=16, cols=16)
    with pytest.raises(InputError, match="below the side information"):
        baselines.pca_jpeg2000(src, str(_empty(tmp_path)), 0.05, k=16)


def test_deflate_is_lossless_and_counted(make_raster, tmp_path):
    src = make_raster()
    c = baselines.deflate(src, str(_empty(tmp_path)))
    assert np.array_equal(c.decoded, hsi_gdal.Open(src).ReadAsArray())
    assert c.n_bytes == os.path.getsize(tmp_path / "out" / "scene.tif")


def test_bd_rates_from_records():
    def rec(method, rate, psnr, sam):
        return {"scene": "s", "method": method, "device": "cpu", "bpppc": rate, "psnr_db": psnr, "sam_deg": sam}

    records = [rec("jpeg2000", r, p, s) for r, p, s in [(0.5, 30, 4), (1, 33, 3), (2, 36, 2), (4, 39, 1)]]
    records += [rec("cae1d", r / 2, p, s) for r, p, s in [(0.5, 30, 4), (1, 33, 3), (2, 36, 2), (4, 39, 1)]]
    records.append(rec("deflate", 12.0, math.inf, 0.0))
    (row,) = bd_rates(records)  # no pca-jpeg2000 curve: only the jpeg2000 anchor; deflate is no curve
    assert row["method"] == "cae1d" and row["anchor"] == "jpeg2000"
    assert row["bd_rate_psnr_pct"] == pytest.approx(-50) and row["bd_rate_sam_pct"] == pytest.approx(-50)


def test_quick_bench_writes_report_with_the_shared_metrics(make_raster, tmp_path):
    data = tmp_path / "data"
    data.mkdir()
    src = make_raster(name="data/a.tif", bands=24, rows=40, cols=48)
    out = tmp_path / "out"
    result = run_bench(data, out, codecs=["cae1d", "jpeg2000", "deflate"], quick=True, log=lambda s: None)
    names = sorted(os.listdir(out))
    assert names == ["bench_quick.json", "bench_quick.md", "bench_quick_psnr.png", "bench_quick_sam.png"]
    recs = json.loads((out / "bench_quick.json").read_text())["records"]
    assert len(recs) == 3 + 3 + 1 and all(r["scene"] == "a" for r in recs)
    # The bench's numbers are hsic compress + hsic eval's numbers (same Translate, same metrics).
    (q2,) = [r for r in recs if r["method"] == "cae1d" and r["quality"] == 2]
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), src, codec="cae1d", quality=2, device="cpu")
    ev = hsi_gdal.evaluate(src, str(tmp_path / "c.hsic"))
    for key in ("bytes", "bpppc", "compression_ratio", "psnr_db", "psnr_band_peak_db", "ssim", "sam_deg",
                "max_abs_error"):
        assert q2[key] == pytest.approx(ev[key]), key
    (lossless,) = [r for r in recs if r["method"] == "deflate"]
    assert lossless["psnr_db"] is None and lossless["max_abs_error"] == 0  # inf PSNR is null in strict JSON
    assert all(r["encode_mb_s"] > 0 and r["decode_mb_s"] > 0 for r in recs)
    assert "## Targets" in (out / "bench_quick.md").read_text()
    assert result["bd_rates"][0]["anchor"] == "jpeg2000"


def test_bench_cli_errors_are_one_line(capsys, tmp_path):
    assert main(["bench", "--data", str(tmp_path), "--out", str(tmp_path / "o")]) == 2
    assert "no scenes" in capsys.readouterr().err
    (tmp_path / "x.tif").write_bytes(b"")
    assert main(["bench", "--data", str(tmp_path), "--codecs", "nope", "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "unknown codec 'nope'" in err and len(err.strip().splitlines()) == 1
