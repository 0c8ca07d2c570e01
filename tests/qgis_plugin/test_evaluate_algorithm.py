"""hsic:evaluate: metrics in the log, an HTML report with a per-band PSNR plot, a spectral-angle map raster."""

import base64
import re

import numpy as np
import pytest
from conftest import LogFeedback, run_alg
from osgeo import gdal
from qgis.core import QgsProcessingContext, QgsProcessingException

pytestmark = pytest.mark.qgis


@pytest.fixture
def pair(hsic_registry, make_raster, tmp_path):
    """A reference GeoTIFF (several tile rows) and its compressed .hsic with sidecar."""
    import hsi_gdal

    ref = make_raster("ref.tif", bands=10, rows=300, cols=60)
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), ref, device="cpu")
    return ref, str(tmp_path / "c.hsic")


def test_evaluate_sidecar_layer_reports_the_hsic_rate_and_writes_report_and_sam_map(pair, tmp_path):
    import hsi_gdal

    ref, hsic = pair
    feedback = LogFeedback()
    out = run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": hsic + ".vrt",
                                    "REPORT": str(tmp_path / "r.html"), "SAM_MAP": str(tmp_path / "sam.tif")},
                  feedback)
    expected = hsi_gdal.evaluate(ref, hsic, maps=True)
    # The rate is the .hsic's bytes, not the sidecar's, although QGIS hands over the sidecar layer.
    assert out["BPPPC"] == pytest.approx(expected["bpppc"])
    assert out["PSNR"] == pytest.approx(expected["psnr_db"])
    assert out["SAM"] == pytest.approx(expected["sam_deg"])
    assert any(re.search(rf"PSNR \(data-range peak\)\s+{expected['psnr_db']:.2f} dB", l) for l in feedback.lines)
    assert any("bpppc" in l for l in feedback.lines)
    assert feedback.reports and max(feedback.reports) == pytest.approx(90, abs=1)

    page = (tmp_path / "r.html").read_text()
    assert f"{expected['ssim']:.4f}" in page
    png = base64.b64decode(re.search(r'src="data:image/png;base64,([^"]+)"', page).group(1))
    assert png.startswith(b"\x89PNG") and len(png) > 2000

    ds = gdal.Open(out["SAM_MAP"])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (60, 300, 1)
    assert ds.GetGeoTransform() == gdal.Open(ref).GetGeoTransform()
    sam = ds.GetRasterBand(1).ReadAsArray()
    np.testing.assert_allclose(sam, expected["sam_map"].astype(np.float32), equal_nan=True)
    assert np.nanmean(sam) == pytest.approx(expected["sam_deg"], rel=1e-5)
    # The per-band PSNR of the plot is the one the per-band-peak mean averages.
    per_band = np.asarray(expected["psnr_per_band_db"])
    assert np.mean(per_band[np.isfinite(per_band)]) == pytest.approx(expected["psnr_band_peak_db"])
    ds = None


def test_outputs_default_next_to_the_candidate_and_hsic_path_is_accepted(pair, tmp_path):
    ref, hsic = pair
    import hsi_gdal

    out = run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": hsic})
    assert out["REPORT"] == str(tmp_path / "c_eval.html") and out["SAM_MAP"] == str(tmp_path / "c_sam.tif")
    expected = hsi_gdal.evaluate(ref, hsic, maps=True)
    assert out["PSNR"] == pytest.approx(expected["psnr_db"]) and out["SAM"] == pytest.approx(expected["sam_deg"])
    assert f"{expected['ssim']:.4f}" in (tmp_path / "c_eval.html").read_text()
    sam = gdal.Open(out["SAM_MAP"]).ReadAsArray()
    np.testing.assert_allclose(sam, expected["sam_map"].astype(np.float32), equal_nan=True)


def test_cancel_leaves_neither_report_nor_map(pair, tmp_path):
    ref, hsic = pair
    feedback = LogFeedback(cancel_at=1)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": hsic, "REPORT": str(tmp_path / "r.html"),
                                  "SAM_MAP": str(tmp_path / "sam.tif")}, feedback)
    assert len(feedback.reports) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.hsic", "c.hsic.vrt", "ref.tif"]


def test_bad_parameters_get_readable_messages(pair, hsic_registry, make_raster, tmp_path):
    ref, hsic = pair
    with pytest.raises(QgsProcessingException, match="candidate is the reference itself"):
        run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": ref})
    with pytest.raises(QgsProcessingException, match=r"REPORT must be a \.html or \.htm file"):
        run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": hsic, "REPORT": str(tmp_path / "r.txt")})
    other = make_raster("other.tif", bands=10, rows=20, cols=20)
    with pytest.raises(QgsProcessingException, match="shapes differ"):
        run_alg("hsic:evaluate", {"REFERENCE": other, "CANDIDATE": hsic})
    with pytest.raises(QgsProcessingException, match="does not exist"):
        run_alg("hsic:evaluate", {"REFERENCE": ref, "CANDIDATE": str(tmp_path / "missing.hsic")})
    alg = hsic_registry.algorithmById("hsic:evaluate")
    ok, message = alg.checkParameterValues({"REFERENCE": ref}, QgsProcessingContext())
    assert not ok and "CANDIDATE: no value specified" in message
