"""hsic:train writes weights that hsic:compress uses and decoding finds again; cancel and bad input."""

import json
import shutil

import numpy as np
import pytest
from conftest import LogFeedback, run_alg
from qgis.core import QgsProcessingContext, QgsProcessingException

from engine.weight_files import file_sha256

pytestmark = pytest.mark.qgis


def test_fine_tune_then_compress_with_the_weights_and_decode_them_back(hsic_registry, make_raster, tmp_path):
    import hsi_gdal

    scene = make_raster("s.tif", bands=12, rows=40, cols=30)
    feedback = LogFeedback()
    out = run_alg("hsic:train", {"INPUT": [scene], "QUALITY": 1, "STEPS": 5}, feedback)
    weights = str(tmp_path / "s_cae1d-q1.pt")  # the default: next to the first training raster
    assert out == {"OUTPUT": weights, "RECORD": str(tmp_path / "s_cae1d-q1.json")}
    record = json.loads((tmp_path / "s_cae1d-q1.json").read_text())
    assert record["config"]["steps"] == 5 and record["data"]["names"] == ["s.tif"]
    assert record["init"]["path"].endswith("cae1d-q1.pt")  # fine-tuned from the installed weights
    assert feedback.reports[-1] == 100 and any("step 5/5" in l for l in feedback.lines)

    hsic = str(tmp_path / "c.hsic")
    run_alg("hsic:compress", {"INPUT": scene, "CODEC": "cae1d", "QUALITY": 1, "WEIGHTS": weights,
                             "OUTPUT": hsic})
    ds = hsi_gdal.Open(hsic)
    assert ds.header.weights_sha256 == file_sha256(weights)
    assert ds.header.codec_options["weights_file"] == "s_cae1d-q1.pt"
    decoded = run_alg("hsic:decompress", {"INPUT": hsic})["OUTPUT"]
    assert decoded == str(tmp_path / "c_decoded.tif")
    from osgeo import gdal

    expected = ds.ReadAsArray()  # the .hsic decoded with its recorded weights
    np.testing.assert_array_equal(gdal.Open(decoded).ReadAsArray(), expected)
    # ... which are not the installed ones: those give other samples for the same scene.
    installed = hsi_gdal.Translate(str(tmp_path / "i.hsic"), scene, quality=1).ReadAsArray()
    assert not np.array_equal(expected, installed)

    # Moved without its weights: a clear error; moved with them: decodes again.
    moved = tmp_path / "moved"
    moved.mkdir()
    shutil.move(hsic, moved / "c.hsic")
    shutil.move(weights, tmp_path / "elsewhere.pt")
    with pytest.raises(QgsProcessingException, match=r"weights file 's_cae1d-q1.pt'.*not found"):
        run_alg("hsic:decompress", {"INPUT": str(moved / "c.hsic")})
    out = run_alg("hsic:decompress", {"INPUT": str(moved / "c.hsic"), "WEIGHTS": str(tmp_path / "elsewhere.pt")})
    np.testing.assert_array_equal(gdal.Open(out["OUTPUT"]).ReadAsArray(), expected)
    shutil.move(tmp_path / "elsewhere.pt", moved / "s_cae1d-q1.pt")
    assert hsi_gdal.Open(str(moved / "c.hsic")).ReadAsArray().shape == (12, 40, 30)
    # The installed weights are not the ones it was written with: refused, not decoded into garbage.
    from engine.weight_files import WEIGHTS_DIR

    with pytest.raises(QgsProcessingException, match="is not the one"):
        run_alg("hsic:decompress", {"INPUT": str(moved / "c.hsic"), "WEIGHTS": str(WEIGHTS_DIR / "cae1d-q1.pt"),
                                    "OUTPUT": str(tmp_path / "x.tif")})
    assert not (tmp_path / "x.tif").exists()


def test_cancel_leaves_no_weights(hsic_registry, make_raster, tmp_path):
    scene = make_raster("s.tif")
    feedback = LogFeedback(cancel_at=3)
    with pytest.raises(QgsProcessingException, match="cancelled"):
        run_alg("hsic:train", {"INPUT": [scene], "STEPS": 50, "FROM_SCRATCH": True,
                               "OUTPUT": str(tmp_path / "w.pt")}, feedback)
    assert len(feedback.reports) == 3 and feedback.reports[-1] < 100
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]


def test_bad_parameters_get_readable_messages(hsic_registry, make_raster, tmp_path):
    scene = make_raster("s.tif")
    alg = hsic_registry.algorithmById("hsic:train")
    context = QgsProcessingContext()
    ok, message = alg.checkParameterValues({"INPUT": [scene], "QUALITY": 9}, context)
    assert not ok and "quality 9" in message
    ok, message = alg.checkParameterValues({"INPUT": [scene], "INIT": str(tmp_path / "nope.pt")}, context)
    assert not ok and "does not exist" in message
    init = make_raster("w.pt")  # any existing file: the contradiction is caught first
    ok, message = alg.checkParameterValues({"INPUT": [scene], "INIT": init, "FROM_SCRATCH": True}, context)
    assert not ok and "contradict" in message
    with pytest.raises(QgsProcessingException, match=r"OUTPUT must be a \.pt file"):
        run_alg("hsic:train", {"INPUT": [scene], "STEPS": 1, "OUTPUT": str(tmp_path / "w.txt")})
    with pytest.raises(QgsProcessingException, match="cannot load weights"):
        run_alg("hsic:train", {"INPUT": [scene], "STEPS": 1, "INIT": init, "OUTPUT": str(tmp_path / "w2.pt")})
    assert not (tmp_path / "w2.pt").exists()
