"""The QGIS desktop under Xvfb with the plugin installed from the zip (`make plugin`) into a throw-away
profile: the toolbox lists the hsic algorithms, a .hsic opened through hsic:open draws, and a screenshot
is saved (pytest's tmp folder; also copied into the folder HSIC_ARTEFACTS names, and to the repo path
HSIC_SCREENSHOT names, e.g. docs/img/qgis.png). About 40 s on 2 cores.

This is the test that caught the desktop-only crash that qgis_plugin/llvm_guard.py prevents."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

pytestmark = pytest.mark.qgis

REPO = Path(__file__).resolve().parents[2]
SAMPLE = REPO / "hsi_gdal" / "sample" / "enmap_potsdam_sample.tif"
MISSING = [name for name in ("Xvfb", "qgis") if shutil.which(name) is None]


@pytest.mark.skipif(bool(MISSING), reason=f"needs {' and '.join(MISSING)} on PATH (Debian packages xvfb, qgis)")
def test_desktop_lists_algorithms_and_renders_an_opened_hsic(tmp_path):
    import hsi_gdal

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from build_plugin import build
    finally:
        sys.path.pop(0)

    # Installed as the plugin manager does it: the zip unpacked into the profile's plugin folder, enabled.
    profiles = tmp_path / "profiles-root"
    profile = profiles / "profiles" / "default"
    zipfile.ZipFile(build(tmp_path / "hsic-plugin.zip")).extractall(profile / "python" / "plugins")
    (profile / "QGIS").mkdir(parents=True)
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nhsic=true\nprocessing=true\n")

    hsic = tmp_path / "data" / "enmap.hsic"
    hsic.parent.mkdir()
    hsi_gdal.Translate(str(hsic), str(SAMPLE), device="cpu")
    os.remove(str(hsic) + ".vrt")  # hsic:open writes it

    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QT_QPA_PLATFORM",
                                                              "GDAL_VRT_PYTHON_TRUSTED_MODULES")}
    env.update(HSIC_SITE_PACKAGES=sysconfig.get_paths()["purelib"], HSIC_DESKTOP_OUT=str(out),
               HSIC_DESKTOP_FILE=str(hsic), QT_QPA_PLATFORM="xcb", HSIC_DEVICE="cpu")
    # -displayfd: Xvfb picks a free display and tells us its number.
    read_fd, write_fd = os.pipe()
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            env["DISPLAY"] = ":" + f.readline().strip()
        # Its own session: /usr/bin/qgis is a wrapper, and QGIS's crash handler starts gdb; a timeout
        # must end all of them.
        proc = subprocess.Popen(
            ["qgis", "--nologo", "--noversioncheck",
             "--profiles-path", str(profiles), "--code", str(Path(__file__).with_name("desktop_script.py"))],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=240)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    if (out / "qgis.png").exists() and os.environ.get("HSIC_ARTEFACTS"):
        Path(os.environ["HSIC_ARTEFACTS"]).mkdir(parents=True, exist_ok=True)
        shutil.copy(out / "qgis.png", Path(os.environ["HSIC_ARTEFACTS"]) / "qgis_desktop.png")
    stages = (out / "stages.txt").read_text() if (out / "stages.txt").exists() else "(none)\n"
    assert (out / "result.json").exists(), (
        f"QGIS ended ({proc.returncode}) without a result; stages reached:\n{stages}{log[-6000:]}")
    result = json.loads((out / "result.json").read_text())
    assert not result["errors"], "\n".join(result["errors"])
    assert result["toolbox"] == ["hsic:compress", "hsic:decompress", "hsic:evaluate", "hsic:open", "hsic:train"]
    assert result["engine_from"].startswith(str(profile)), "QGIS did not use the plugin installed from the zip"
    assert result["valid"] and result["layers"] == 1 and result["crs"] == "EPSG:32633" and result["bands"] == 224
    assert result["drawn_fraction"] > 0.2, "the layer drew (almost) nothing on the canvas"
    assert result["screenshot_saved"] and (out / "qgis.png").stat().st_size > 10_000
    if os.environ.get("HSIC_SCREENSHOT"):
        shutil.copy(out / "qgis.png", REPO / os.environ["HSIC_SCREENSHOT"])
