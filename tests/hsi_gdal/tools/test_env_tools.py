"""`hsic env` is all plain GDAL tools need: gdalinfo -stats and gdal_translate on a sidecar, in a
clean environment (only PATH and HOME) plus exactly the lines `hsic env` prints."""

import os
import shutil
import subprocess

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from hsi_gdal.tools.cli import main


@pytest.mark.slow
@pytest.mark.skipif(shutil.which("gdalinfo") is None or shutil.which("gdal_translate") is None,
                    reason="GDAL command-line tools (Debian gdal-bin) are not installed")
def test_gdalinfo_and_gdal_translate_with_hsic_env(make_raster, tmp_path, capsys):
    src = make_raster(bands=8, rows=40, cols=30)
    dst = str(tmp_path / "c.hsic")
    expected = hsi_gdal.Translate(dst, src).ReadAsArray()
    # Moved too: the tools must find the .hsic beside the sidecar, not at the path recorded in it.
    work = tmp_path / "moved"
    work.mkdir()
    shutil.move(dst, work / "c.hsic")
    shutil.move(dst + ".vrt", work / "c.hsic.vrt")

    assert main(["env"]) == 0
    env_text = capsys.readouterr().out
    assert "GDAL_VRT_PYTHON_TRUSTED_MODULES=" in env_text and "hsi_gdal.pixelfn" in env_text
    assert "GDAL_VRT_ENABLE_PYTHON" not in env_text
    script = env_text + "\ngdalinfo -stats c.hsic.vrt && gdal_translate -q c.hsic.vrt out.tif\n"
    clean = {"PATH": "/usr/bin:/bin", "HOME": os.environ.get("HOME", "/tmp")}
    r = subprocess.run(["bash", "-c", script], cwd=work, env=clean, capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stderr
    assert "STATISTICS_MEAN=" in r.stdout and "wavelength=410" in r.stdout
    # The statistics declared are the source's, recorded at compress time (no decode to get them).
    src_ds = gdal.Open(src)  # held: a band outliving its dataset crashes GDAL 3.6
    source = src_ds.GetRasterBand(1).ReadAsArray()
    mean = float(r.stdout.split("STATISTICS_MEAN=")[1].split()[0])
    assert mean == pytest.approx(source[source != -32768].mean(), rel=1e-6)
    out = gdal.Open(str(work / "out.tif"))
    # Another process's torch may sum in another order: a rare 1-unit rounding difference is allowed.
    assert np.abs(out.ReadAsArray().astype(int) - expected).max() <= 1
    assert out.GetRasterBand(2).GetMetadataItem("wavelength") == "410"
    out = None

    # Without the environment, the tools open the sidecar but cannot decode a pixel.
    r = subprocess.run(["gdal_translate", "-q", "c.hsic.vrt", "out2.tif"], cwd=work, env=clean,
                       capture_output=True, text=True, timeout=300)
    assert r.returncode != 0 or not (work / "out2.tif").exists() or \
        np.abs(gdal.Open(str(work / "out2.tif")).ReadAsArray().astype(int) - expected).max() > 1
