"""hsic:compress as a user meets it in the dialog and in qgis_process: help with placeholders and the codecs'
qualities, the output's visible default, CODEC by id or number, the log line, the layer added, a cancel."""

import html

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

from engine.registry import DEFAULT_CODEC, get_info, list_codecs
from qgis_plugin.base import CANCELLED, codec_id, help_text
from conftest import LogFeedback, run_alg
from test_provider import make_scene

pytestmark = pytest.mark.qgis


def test_help_shows_placeholders_and_each_codecs_qualities(hsic_registry):
    alg = hsic_registry.algorithmById("hsic:compress")
    shown = alg.shortHelpString()  # the dialog renders it as HTML
    assert QgsApplication.platform() != "qgis_process"
    assert "&lt;input&gt;.hsic" in shown and "<input>" not in shown and "<br>" in shown
    text = html.unescape(shown.replace("<br>", "\n"))
    for number, info in enumerate(list_codecs()):
        assert f"{number} {info.id}: qualities {', '.join(map(str, info.qualities))} " \
               f"(default {info.default_quality})" in text
    assert f"{DEFAULT_CODEC}: " in text and "the default codec" in text
    assert help_text("a <b>\nc") == "a &lt;b&gt;<br>c"


def test_codec_by_id_or_number_and_a_wrong_one_lists_the_ids(hsic_registry, tmp_path):
    ids = [info.id for info in list_codecs()]
    assert codec_id("klt") == "klt" and codec_id(ids.index("cae1d")) == "cae1d"
    assert codec_id(str(ids.index("cae1d"))) == "cae1d" and codec_id(["klt"]) == "klt"
    alg = hsic_registry.algorithmById("hsic:compress")
    scene = make_scene(tmp_path / "s.tif", 8, 8, 4)
    context = QgsProcessingContext()
    base = {"INPUT": str(scene), "OUTPUT": str(tmp_path / "c.hsic")}
    assert alg.checkParameterValues({**base, "CODEC": str(ids.index("cae1d")), "QUALITY": 3}, context) == (True, "")
    assert alg.checkParameterValues({**base, "CODEC": "klt"}, context) == (True, "")
    ok, message = alg.checkParameterValues({**base, "CODEC": "nope"}, context)
    assert not ok and "\n" not in message
    assert message.startswith("CODEC: unknown codec 'nope'; valid: " + ", ".join(ids))
    ok, message = alg.checkParameterValues({**base, "CODEC": str(len(ids))}, context)
    assert not ok and "unknown codec" in message
    # The numeric form compresses with the codec at that number.
    run_alg("hsic:compress", {**base, "CODEC": ids.index("cae1d"), "QUALITY": 1})
    import hsi_gdal

    assert (hsi_gdal.Open(base["OUTPUT"]).header.codec, hsi_gdal.Open(base["OUTPUT"]).header.quality) == ("cae1d", 1)


def test_default_output_is_beside_the_input_the_log_gives_the_cost_and_the_layer_is_added(hsic_registry, tmp_path):
    import hsi_gdal

    scene = make_scene(tmp_path / "s.tif", 30, 20, 8)
    feedback, context = LogFeedback(), QgsProcessingContext()
    # What the dialog sends for the untouched box: the placeholder under its default outputs folder.
    result = run_alg("hsic:compress", {"INPUT": str(scene), "OUTPUT": "/some/outputs/folder/<input>.hsic",
                                       "BPPPC": 3.0}, feedback, context)
    out = str(tmp_path / "s.hsic")
    assert result == {"OUTPUT": out, "SIDECAR": out + ".vrt"}
    header = hsi_gdal.Open(out).header
    record = hsi_gdal.compression_record(out, header)
    assert record["bytes"] == (tmp_path / "s.hsic").stat().st_size
    assert record["bpppc"] == pytest.approx(record["bytes"] * 8 / (30 * 20 * 8))
    assert hsi_gdal.compression_line(out, record) in feedback.lines
    line = hsi_gdal.compression_line(out, record)
    assert f"{record['bytes']} bytes" in line and "bpppc" in line and "ratio" in line and f"q{header.quality}" in line
    assert f"quality {header.quality} chosen for the target bpppc 3" in feedback.lines
    (layer_id, details), = context.layersToLoadOnCompletion().items()
    assert details.name == "s.hsic" and context.getMapLayer(layer_id).source() == out + ".vrt"


def test_a_cancel_is_reported_as_cancelled_and_leaves_nothing(hsic_registry, tmp_path):
    scene = make_scene(tmp_path / "s.tif", 300, 200, 8)
    with pytest.raises(QgsProcessingException, match=CANCELLED):
        run_alg("hsic:compress", {"INPUT": str(scene)}, LogFeedback(cancel_at=1))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["s.tif"]


def test_a_codec_without_installed_weights_is_marked_and_refused(hsic_registry, monkeypatch, tmp_path):
    import hsi_gdal

    monkeypatch.setattr(hsi_gdal, "missing_weights", lambda codec: get_info(codec).qualities if codec == "sscnet"
                        else ())
    alg = hsic_registry.algorithmById("hsic:compress")
    text = html.unescape(alg.shortHelpString())
    assert "sscnet: qualities 1, 2, 3 (default 2) [weights not installed]<br>" in text
    assert "klt: qualities 1, 2, 3, 4, 5 (default 3), the default codec<br>" in text
    assert "need WEIGHTS from hsic:train, or the plugin built with every codec's weights" in text
    # Choosing it is refused before any work, in one line.
    ok, message = alg.checkParameterValues({"INPUT": str(make_scene(tmp_path / "s.tif", 8, 8, 4)), "CODEC": "sscnet"},
                                           QgsProcessingContext())
    assert not ok and "\n" not in message
    assert message.startswith("the weights of sscnet quality 2 are not installed here")
