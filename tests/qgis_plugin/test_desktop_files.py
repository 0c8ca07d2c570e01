"""In the real QGIS desktop (Xvfb, plugin from the zip): .hsic files without sidecars open the four ways a
user opens a raster, each writing its sidecar, and reloading the Browser does not crash QGIS (Python-made
Browser items did, qgis/QGIS#49720). About 40 s on 2 cores."""

import os
from pathlib import Path

import pytest

from desktop_harness import MISSING, run_in_desktop

pytestmark = pytest.mark.qgis


@pytest.mark.skipif(bool(MISSING), reason=f"needs {' and '.join(MISSING)} on PATH (Debian packages xvfb, qgis)")
def test_hsic_files_open_like_rasters_in_the_desktop(tmp_path, make_raster):
    import hsi_gdal

    data = tmp_path / "data"
    data.mkdir()
    src = make_raster("s.tif", bands=8, rows=30, cols=40)
    for name in "abcd":
        hsi_gdal.Translate(str(data / f"{name}.hsic"), src, device="cpu")
        os.remove(data / f"{name}.hsic.vrt")  # as for a .hsic copied without its sidecar

    result = run_in_desktop(tmp_path, Path(__file__).with_name("desktop_files_script.py"),
                            {"HSIC_DESKTOP_DATA": str(data)})
    assert not result["errors"], "\n".join(result["errors"])
    assert result["added"] and result["double_click"] is True
    assert result["item"] == ["c.hsic", str(data / "c.hsic.vrt")]
    assert result["layers"] == {f"{n}.hsic": [True, str(data / f"{n}.hsic.vrt")] for n in "abcd"}
