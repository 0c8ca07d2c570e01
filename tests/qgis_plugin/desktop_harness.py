"""Run a script inside the real QGIS desktop under Xvfb, with the plugin installed from `make plugin`'s zip
into a throw-away profile; the script writes ``result.json`` into $HSIC_DESKTOP_OUT and ends QGIS."""

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
MISSING = [name for name in ("Xvfb", "qgis") if shutil.which(name) is None]


def desktop_paths(tmp_path: Path) -> tuple[Path, Path, Path]:
    """(profiles root, the QGIS profile the plugin is installed into, the script's output folder)."""
    profiles = tmp_path / "profiles-root"
    return profiles, profiles / "profiles" / "default", tmp_path / "out"


def run_in_desktop(tmp_path: Path, script: Path, env_extra: dict, timeout: int = 240,
                   keep: dict[str, str] | None = None) -> dict:
    """The script's result.json; AssertionError with the stages it reached (stages.txt, when it writes one)
    and QGIS's output when it ends without one. ``keep``: files of the output folder copied, whatever the
    outcome, into the folder HSIC_ARTEFACTS names (output name -> artefact name)."""
    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from build_plugin import build
    finally:
        sys.path.pop(0)
    profiles, profile, out = desktop_paths(tmp_path)
    # Installed as the plugin manager does it: the zip unpacked into the profile's plugin folder, enabled.
    zipfile.ZipFile(build(tmp_path / "hsic-plugin.zip")).extractall(profile / "python" / "plugins")
    (profile / "QGIS").mkdir(parents=True)
    (profile / "QGIS" / "QGIS3.ini").write_text("[PythonPlugins]\nhsic=true\nprocessing=true\n")
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "QT_QPA_PLATFORM",
                                                              "GDAL_VRT_PYTHON_TRUSTED_MODULES")}
    env.update(HSIC_SITE_PACKAGES=sysconfig.get_paths()["purelib"], HSIC_DESKTOP_OUT=str(out),
               QT_QPA_PLATFORM="xcb", HSIC_DEVICE="cpu", **env_extra)
    read_fd, write_fd = os.pipe()  # -displayfd: Xvfb picks a free display and tells us its number
    xvfb = subprocess.Popen(["Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp"],
                            pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    os.close(write_fd)
    try:
        with os.fdopen(read_fd) as f:
            env["DISPLAY"] = ":" + f.readline().strip()
        # Its own session: /usr/bin/qgis is a wrapper and QGIS's crash handler starts gdb; a timeout ends all.
        proc = subprocess.Popen(["qgis", "--nologo", "--noversioncheck", "--profiles-path", str(profiles),
                                 "--code", str(script)], env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, start_new_session=True)
        try:
            log, _ = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            log, _ = proc.communicate()
    finally:
        xvfb.terminate()
        xvfb.wait(10)
    artefacts = os.environ.get("HSIC_ARTEFACTS")
    for name, kept in (keep or {}).items():
        if artefacts and (out / name).exists():
            Path(artefacts).mkdir(parents=True, exist_ok=True)
            shutil.copy(out / name, Path(artefacts) / kept)
    stages = (out / "stages.txt").read_text() if (out / "stages.txt").exists() else "(none)\n"
    assert (out / "result.json").exists(), (
        f"QGIS ended ({proc.returncode}) without a result; stages reached:\n{stages}{log[-6000:]}")
    return json.loads((out / "result.json").read_text())
