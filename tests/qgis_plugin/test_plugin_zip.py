"""`make plugin`'s zip holds what the plugin runs on and no more: the packages without the command-line
tools and the sample, and only the weights of the default codec and the default training codec."""

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from engine.registry import DEFAULT_CODEC, DEFAULT_TRAIN_CODEC, get_info, list_codecs

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO / "scripts"))
try:
    import build_plugin
finally:
    sys.path.pop(0)


def test_the_plugin_codecs_are_the_registrys_defaults():
    assert set(build_plugin.PLUGIN_CODECS) == {DEFAULT_CODEC, DEFAULT_TRAIN_CODEC}


def test_the_zip_holds_the_packages_and_only_the_default_codecs_weights(tmp_path):
    zip_path = build_plugin.build(tmp_path / "hsic-plugin.zip")
    names = set(zipfile.ZipFile(zip_path).namelist())
    for name in ("hsic/__init__.py", "hsic/metadata.txt", "hsic/engine/__init__.py", "hsic/hsi_gdal/pixelfn.py",
                 "hsic/qgis_plugin/__init__.py", "hsic/engine/weights/klt_context.npz",
                 "hsic/engine/weights/klt_laplace_tables.npz"):
        assert name in names
    weights = {n.rsplit("/", 1)[1] for n in names if n.startswith("hsic/engine/weights/")}
    plugin_weights = {name for codec in build_plugin.PLUGIN_CODECS for name in get_info(codec).weights.values()}
    assert {w for w in weights if w.endswith(".pt")} == plugin_weights
    assert not [n for n in names if n.endswith(".json") or "/tools/" in n or "/sample/" in n]
    # Measured 2026-12-03: 998,397 bytes (55 MB with every codec's weights).
    assert os.path.getsize(zip_path) < 1_500_000
    assert build_plugin.wanted("engine/weights/sscnet-q1.pt", all_weights=True)
    assert not build_plugin.wanted("engine/weights/sscnet-q1.pt", all_weights=False)


def test_the_unpacked_plugin_loads_its_codecs_on_its_own(tmp_path):
    # Loading every quality of the plugin's codecs reads their weights and tables from the unpacked zip.
    # (Coding there too would compile the numba kernels afresh: over a minute on 2 cores. The desktop test
    # codes and draws a klt file from the zip.)
    zipfile.ZipFile(build_plugin.build(tmp_path / "hsic-plugin.zip")).extractall(tmp_path / "plugins")
    script = f"""
import sys
sys.path.insert(0, {str(tmp_path / 'plugins' / 'hsic')!r})
import hsi_gdal
from engine.registry import get_codec, get_info
import engine
assert hsi_gdal.__file__.startswith({str(tmp_path)!r}) and engine.__file__.startswith({str(tmp_path)!r})
for codec in {build_plugin.PLUGIN_CODECS!r}:
    for quality in get_info(codec).qualities:
        get_codec(codec, quality, "cpu")
print(sorted(c for c in {[i.id for i in list_codecs()]!r} if hsi_gdal.missing_weights(c)))
"""
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    r = subprocess.run([sys.executable, "-c", script], cwd=tmp_path, env=env, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    without = {i.id for i in list_codecs() if i.uses_weights} - set(build_plugin.PLUGIN_CODECS)
    assert r.stdout.strip() == str(sorted(without))
