"""Without torch/compressai in QGIS's Python the plugin still loads, says once what to install, and every
algorithm explains instead of failing (missing modules simulated through sys.modules)."""

import sys

import pytest
from conftest import FakeIface, run_alg
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingException

from qgis_plugin import classFactory

pytestmark = pytest.mark.qgis


@pytest.fixture
def without_ml(monkeypatch):
    # A None entry makes `import compressai` fail, as if the package were not installed.
    for name in ("compressai", "torch"):
        monkeypatch.setitem(sys.modules, name, None)


def test_plugin_loads_and_says_once_what_to_install(qgis_processing, without_ml, make_raster, tmp_path):
    iface = FakeIface()
    plugin = classFactory(iface)
    try:
        plugin.initGui()
        provider = QgsApplication.processingRegistry().providerById("hsic")
        ids = sorted(a.id() for a in provider.algorithms())
        assert ids == ["hsic:compress", "hsic:decompress", "hsic:evaluate", "hsic:open", "hsic:train"]
        assert len(iface.messages) == 1
        title, text = iface.messages[0]
        assert title == "HSIC" and "torch, compressai" in text and "-m pip install torch compressai" in text

        scene = make_raster("s.tif")
        hsic = tmp_path / "c.hsic"
        hsic.write_bytes(b"x")
        (tmp_path / "c.hsic.vrt").write_bytes(b"x")
        calls = {
            "hsic:compress": {"INPUT": scene},
            "hsic:decompress": {"INPUT": str(hsic)},
            "hsic:evaluate": {"REFERENCE": scene, "CANDIDATE": scene},
            "hsic:open": {"INPUT": str(hsic)},
            "hsic:train": {"INPUT": [scene]},
        }
        for alg_id, params in calls.items():
            alg = provider.algorithm(alg_id.split(":")[1])
            with pytest.raises(QgsProcessingException, match="needs the Python package"):
                # Straight to processAlgorithm, as a model or a script may call it...
                alg.processAlgorithm(params, QgsProcessingContext(), None)
            # ...and through Processing's own checks, as the dialog and qgis_process do.
            with pytest.raises(QgsProcessingException, match="-m pip install torch compressai"):
                run_alg(alg_id, params)
        # Nothing written (QGIS itself may leave an .aux.xml beside a raster it loaded).
        assert sorted(p.name for p in tmp_path.iterdir() if not p.name.endswith(".aux.xml")) == [
            "c.hsic", "c.hsic.vrt", "s.tif"]
    finally:
        plugin.unload()


def test_nothing_is_reported_when_everything_is_there(qgis_processing):
    from qgis_plugin import deps

    assert deps.missing() == []
    iface = FakeIface()
    plugin = classFactory(iface)
    try:
        plugin.initGui()
        assert iface.messages == []
    finally:
        plugin.unload()


def test_message_names_qgis_python_and_a_venv_command(monkeypatch):
    """Inside QGIS sys.executable is the qgis binary: the advice must name the Python QGIS embeds and
    install into a venv (Debian 12's system Python refuses pip), not 'python3' from PATH."""
    import sys

    from qgis_plugin import deps

    monkeypatch.setattr(sys, "executable", "/usr/bin/qgis")
    text = deps.message(["torch"])
    py = f"{sys.base_prefix}/bin/python{sys.version_info.major}.{sys.version_info.minor}"
    assert f"({py})" in text and f"{py} -m venv --system-site-packages" in text
    assert "/usr/bin/qgis" not in text and "\n" not in text
    assert "HSIC_SITE_PACKAGES=" in text and "-m pip install torch" in text
