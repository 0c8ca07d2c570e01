"""The HSIC Processing provider inside a headless QGIS (pytest-qgis)."""

import numpy as np
import pytest
from osgeo import gdal, osr
from qgis.core import (
    QgsApplication,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterNumber,
)

from engine.registry import DEFAULT_CODEC, get_info, list_codecs
from qgis_plugin import classFactory

pytestmark = pytest.mark.qgis


def make_scene(path, cols, rows, bands):
    """A small georeferenced int16 cube in EPSG:32633 with smooth spectra plus noise."""
    rng = np.random.default_rng(0)
    spectra = 1000 + 3000 * np.sin(np.linspace(0, 3, bands))[:, None, None]
    cube = (spectra * rng.uniform(0.5, 1.5, (1, rows, cols)) + rng.normal(0, 20, (bands, rows, cols)))
    ds = gdal.GetDriverByName("GTiff").Create(str(path), cols, rows, bands, gdal.GDT_Int16)
    ds.SetGeoTransform((370000.0, 30.0, 0.0, 5810000.0, 0.0, -30.0))
    srs = osr.SpatialReference()
    srs.ImportFromEPSG(32633)
    ds.SetProjection(srs.ExportToWkt())
    ds.WriteArray(cube.astype(np.int16))
    ds = None
    return path


@pytest.fixture
def registry(qgis_processing):
    """The processing registry with the provider registered the way QGIS does it, through the plugin."""
    plugin = classFactory(None)
    plugin.initProcessing()
    yield QgsApplication.processingRegistry()
    plugin.unload()


def run(alg_id, parameters, feedback=None):
    import processing

    return processing.run(alg_id, parameters, feedback=feedback or QgsProcessingFeedback())


def test_provider_registers_its_five_algorithms(registry):
    provider = registry.providerById("hsic")
    assert provider is not None
    assert provider.name() == "HSIC hyperspectral compression"
    assert sorted(a.id() for a in provider.algorithms()) == [
        "hsic:compress", "hsic:decompress", "hsic:evaluate", "hsic:open", "hsic:train"]


def test_unload_removes_the_provider(qgis_processing):
    plugin = classFactory(None)
    plugin.initProcessing()
    plugin.unload()
    assert QgsApplication.processingRegistry().providerById("hsic") is None


def test_init_gui_lets_gdal_open_sidecars(qgis_processing):
    key = "GDAL_VRT_PYTHON_TRUSTED_MODULES"
    gdal.SetConfigOption(key, None)
    plugin = classFactory(None)
    try:
        plugin.initGui()
        assert "hsi_gdal.pixelfn" in gdal.GetConfigOption(key).split(",")
    finally:
        plugin.unload()


def test_compress_parameters(registry):
    alg = registry.algorithmById("hsic:compress")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == ["INPUT", "CODEC", "QUALITY", "BPPPC", "MIN_PSNR", "MAX_SAM", "MAX_ABS_ERROR", "OUTPUT",
                            "WEIGHTS"]
    for key in ("BPPPC", "MIN_PSNR", "MAX_SAM", "MAX_ABS_ERROR"):  # optional numbers, off by default
        assert params[key].dataType() == QgsProcessingParameterNumber.Double
        assert params[key].flags() & QgsProcessingParameterDefinition.FlagOptional
    assert params["INPUT"].type() == "raster"

    codec = params["CODEC"]
    assert codec.options() == [c.id for c in list_codecs()]
    assert codec.usesStaticStrings()
    assert codec.defaultValue() == DEFAULT_CODEC

    quality = params["QUALITY"]
    assert quality.dataType() == QgsProcessingParameterNumber.Integer
    # Empty means "the chosen codec's default".
    assert quality.flags() & QgsProcessingParameterDefinition.FlagOptional
    assert quality.defaultValue() is None

    assert params["OUTPUT"].type() == "fileDestination"
    assert params["WEIGHTS"].flags() & QgsProcessingParameterDefinition.FlagOptional
    assert params["OUTPUT"].fileFilter() == "HSIC files (*.hsic)"
    assert params["OUTPUT"].defaultValue() == "<input>.hsic"  # shown in the dialog's box
    outputs = {o.name(): o for o in alg.outputDefinitions()}
    assert set(outputs) == {"OUTPUT", "SIDECAR"} and outputs["SIDECAR"].type() == "outputRaster"


def test_decompress_parameters(registry):
    alg = registry.algorithmById("hsic:decompress")
    params = {p.name(): p for p in alg.parameterDefinitions()}
    assert list(params) == ["INPUT", "OUTPUT", "WEIGHTS"]
    assert params["INPUT"].type() == "file"
    assert params["INPUT"].extension() == "hsic"
    assert params["OUTPUT"].type() == "rasterDestination"
    assert params["OUTPUT"].defaultFileExtension() == "tif"


def test_bad_quality_is_rejected_with_a_readable_message(registry, tmp_path):
    alg = registry.algorithmById("hsic:compress")
    scene = make_scene(tmp_path / "s.tif", 8, 8, 4)
    base = {"INPUT": str(scene), "CODEC": "cae1d", "OUTPUT": str(tmp_path / "c.hsic")}
    context = QgsProcessingContext()

    ok, message = alg.checkParameterValues({**base, "QUALITY": 99}, context)
    qualities = ", ".join(map(str, get_info("cae1d").qualities))
    assert not ok
    # The engine's own words, naming the bad value and the choices.
    assert "quality 99" in message and qualities in message

    assert alg.checkParameterValues(base, context) == (True, "")
    ok, message = alg.checkParameterValues({**base, "QUALITY": 2, "BPPPC": 1.0}, context)
    assert not ok and "not both" in message
    assert alg.checkParameterValues({**base, "QUALITY": get_info("cae1d").default_quality}, context)[0]


def test_compress_refuses_an_output_that_is_not_hsic(registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 8, 8, 4)
    with pytest.raises(QgsProcessingException, match=r"OUTPUT must be a \.hsic file"):
        run("hsic:compress", {"INPUT": str(scene), "OUTPUT": str(tmp_path / "c.tif")})


def test_compress_writes_hsic_and_sidecar(registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 40, 30, 16)
    out = tmp_path / "c.hsic"
    result = run("hsic:compress", {"INPUT": str(scene), "CODEC": "cae1d", "QUALITY": 2, "OUTPUT": str(out)})
    assert result == {"OUTPUT": str(out), "SIDECAR": str(out) + ".vrt"}
    import hsi_gdal

    # The algorithm writes what the Python API writes for the same request, and its sidecar shows it.
    api = hsi_gdal.Translate(str(tmp_path / "api.hsic"), str(scene), codec="cae1d", quality=2, device="cpu")
    written = hsi_gdal.Open(str(out))
    assert (written.header.codec, written.header.quality) == ("cae1d", 2)
    np.testing.assert_array_equal(written.ReadAsArray(), api.ReadAsArray())
    np.testing.assert_array_equal(gdal.Open(str(out) + ".vrt").ReadAsArray(), api.ReadAsArray())
    # Measured 2026-12-03: 16.1 dB (this 16-band synthetic scene is far from what cae1d learned).
    assert hsi_gdal.evaluate(str(scene), str(out))["psnr_db"] > 15.1


def test_compress_to_a_rate_target(registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 40, 30, 16)
    out = tmp_path / "c.hsic"
    import hsi_gdal

    rate = {}
    for q in (2, 3):  # what each quality costs on this scene, through the Python API
        hsi_gdal.Translate(str(tmp_path / f"q{q}.hsic"), str(scene), codec="cae1d", quality=q, device="cpu")
        rate[q] = (tmp_path / f"q{q}.hsic").stat().st_size * 8 / (40 * 30 * 16)
    target = (rate[2] + rate[3]) / 2  # q3 does not fit, q2 does: q2 is chosen
    run("hsic:compress", {"INPUT": str(scene), "CODEC": "cae1d", "BPPPC": target, "OUTPUT": str(out)})
    assert hsi_gdal.Open(str(out)).header.quality == 2
    assert out.stat().st_size * 8 / (40 * 30 * 16) == pytest.approx(rate[2]) and rate[2] <= target
    with pytest.raises(QgsProcessingException, match="no quality meets the target"):
        run("hsic:compress", {"INPUT": str(scene), "CODEC": "cae1d", "MIN_PSNR": 300.0,
                              "OUTPUT": str(tmp_path / "d.hsic")})
    assert not (tmp_path / "d.hsic").exists()


def test_compress_with_an_error_bound(registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 20, 15, 8)
    alg = registry.algorithmById("hsic:compress")
    base = {"INPUT": str(scene), "CODEC": "cae1d", "OUTPUT": str(tmp_path / "c.hsic")}
    context = QgsProcessingContext()
    assert alg.checkParameterValues({**base, "QUALITY": 1, "MAX_ABS_ERROR": 3.0}, context) == (True, "")
    ok, message = alg.checkParameterValues({**base, "MAX_ABS_ERROR": 3.0, "BPPPC": 2.0}, context)
    assert not ok and "cannot be combined" in message
    out = tmp_path / "c.hsic"
    run("hsic:compress", {**base, "QUALITY": 1, "MAX_ABS_ERROR": 3.0})
    ref = gdal.Open(str(scene)).ReadAsArray().astype(int)
    decoded = gdal.Open(str(out) + ".vrt").ReadAsArray().astype(int)  # through the sidecar, as QGIS reads it
    assert np.abs(decoded - ref).max() <= 3
    run("hsic:compress", {**base, "MAX_ABS_ERROR": 0.0, "OUTPUT": str(tmp_path / "l.hsic")})
    assert np.array_equal(gdal.Open(str(tmp_path / "l.hsic.vrt")).ReadAsArray().astype(int), ref)


class CancelAtFirstProgress(QgsProcessingFeedback):
    """Cancels as soon as the first progress report arrives, and records every report."""

    def __init__(self):
        super().__init__()
        self.reports = []
        self.progressChanged.connect(self._on_progress)

    def _on_progress(self, percent):
        self.reports.append(percent)
        self.cancel()


def test_cancel_leaves_no_output_then_roundtrip_decompresses(registry, tmp_path):
    # 300 x 200 pixels make several 128-pixel tiles, so cancelling after the first one stops real work.
    scene = make_scene(tmp_path / "s.tif", 300, 200, 8)
    out = tmp_path / "c.hsic"
    feedback = CancelAtFirstProgress()
    with pytest.raises(QgsProcessingException):
        run("hsic:compress", {"INPUT": str(scene), "OUTPUT": str(out)}, feedback)
    assert feedback.reports and feedback.reports[0] < 100
    assert len(feedback.reports) == 1, "progress kept coming after the cancel"
    assert not out.exists() and not (tmp_path / "c.hsic.vrt").exists()

    run("hsic:compress", {"INPUT": str(scene), "OUTPUT": str(out)})
    result = run("hsic:decompress", {"INPUT": str(out), "OUTPUT": str(tmp_path / "d.tif")})
    ds = gdal.Open(result["OUTPUT"])
    assert (ds.RasterXSize, ds.RasterYSize, ds.RasterCount) == (300, 200, 8)
    import hsi_gdal

    np.testing.assert_array_equal(ds.ReadAsArray(), hsi_gdal.Open(str(out)).ReadAsArray())
    assert ds.GetRasterBand(1).DataType == gdal.GDT_Int16
    assert ds.GetGeoTransform() == (370000.0, 30.0, 0.0, 5810000.0, 0.0, -30.0)
    assert osr.SpatialReference(wkt=ds.GetProjection()).GetAuthorityCode(None) == "32633"
    ds = None


def test_outputs_default_next_to_the_input(registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 20, 10, 4)
    assert run("hsic:compress", {"INPUT": str(scene)})["OUTPUT"] == str(tmp_path / "s.hsic")
    out = run("hsic:decompress", {"INPUT": str(tmp_path / "s.hsic")})["OUTPUT"]
    assert out == str(tmp_path / "s_decoded.tif") and gdal.Open(out).RasterCount == 4
