"""Faults: missing weights, newer files, unreadable inputs, a full disk, ``kill -9`` mid-write.

(Mismatched weights, NaN/nodata exactness and newer format versions at the container level are
tested in tests/engine/test_pipeline.py and test_container.py.)
"""

import os
import resource
import signal
import struct
import subprocess
import sys
import time
import zlib

import pytest

from engine.errors import CodecError, HSICIOError
from hsi_gdal.tools.cli import main

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err, err
    return err


def test_missing_weights_refused_for_compress_and_decode(make_raster, tmp_path, monkeypatch, capsys):
    src = make_raster(bands=5, rows=9, cols=8)
    out = str(tmp_path / "a.hsic")
    assert main(["compress", src, out, "--codec", "cae1d", "--device", "cpu", "-q"]) == 0
    from engine import weight_files
    from engine.pipeline import SceneDecoder

    monkeypatch.setattr(weight_files, "WEIGHTS_DIR", tmp_path / "no-weights")
    with pytest.raises(CodecError, match="not installed"):
        SceneDecoder(out, device="cpu")
    err = one_line_error(capsys, ["compress", src, str(tmp_path / "b.hsic"), "--codec", "cae1d", "--device", "cpu",
                                   "-q"])
    assert "hsic train" in err and not (tmp_path / "b.hsic").exists()


def test_newer_format_version_is_one_line(make_raster, tmp_path, capsys):
    src = make_raster(bands=4, rows=6, cols=6)
    out = tmp_path / "a.hsic"
    assert main(["compress", src, str(out), "--device", "cpu", "-q"]) == 0
    data = bytearray(out.read_bytes())
    struct.pack_into("<H", data, 8, 2)  # format 2.0, header CRC fixed so only the version is wrong
    head_len = struct.unpack_from("<I", data, 16)[0]
    struct.pack_into("<I", data, 24 + head_len, zlib.crc32(data[:24 + head_len]))
    out.write_bytes(bytes(data))
    assert "newer HSIC" in one_line_error(capsys, ["info", str(out)])
    assert "newer HSIC" in one_line_error(capsys, ["decompress", str(out), str(tmp_path / "d.tif"), "-q"])
    assert not (tmp_path / "d.tif").exists()


def test_unreadable_inputs_are_one_line(tmp_path, capsys):
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    for src in (text, tmp_path, tmp_path / "missing.tif"):
        one_line_error(capsys, ["compress", str(src), str(tmp_path / "o.hsic"), "-q"])
    assert not (tmp_path / "o.hsic").exists()


def test_unreadable_permissions_are_one_line(make_raster, tmp_path, capsys):
    """A raster and a .hsic the user may not read: one line each, no output. As root (CI, containers)
    permissions do not stop reads, so the CLI then runs as the unprivileged user ``nobody``."""
    import shutil
    import tempfile

    src = make_raster(bands=4, rows=5, cols=5)
    assert main(["compress", src, str(tmp_path / "a.hsic"), "--device", "cpu", "-q"]) == 0
    if os.geteuid() != 0:
        for path in (src, str(tmp_path / "a.hsic")):
            os.chmod(path, 0)
        try:
            err = one_line_error(capsys, ["compress", src, str(tmp_path / "o.hsic"), "-q"])
            assert "Permission denied" in err
            assert "Permission denied" in one_line_error(capsys, ["info", str(tmp_path / "a.hsic")])
        finally:
            for path in (src, str(tmp_path / "a.hsic")):
                os.chmod(path, 0o644)
        assert not (tmp_path / "o.hsic").exists()
        return
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv (util-linux) to drop to an unprivileged user")
    # pytest's tmp_path is private to root: a folder that nobody can enter, holding root-only files.
    folder = tempfile.mkdtemp(prefix="hsic-perm-")
    try:
        os.chmod(folder, 0o777)
        for name in ("s.tif", "a.hsic"):
            shutil.copy(src if name == "s.tif" else tmp_path / "a.hsic", os.path.join(folder, name))
            os.chmod(os.path.join(folder, name), 0)
        env = {**os.environ, "HOME": folder, "NUMBA_CACHE_DIR": os.path.join(folder, "numba")}
        cli = "import sys; from hsi_gdal.tools.cli import main; sys.exit(main(sys.argv[1:]))"
        for argv in (["compress", os.path.join(folder, "s.tif"), os.path.join(folder, "o.hsic"), "-q"],
                     ["info", os.path.join(folder, "a.hsic")]):
            done = subprocess.run(["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups",
                                   sys.executable, "-c", cli, *argv], cwd=ROOT, env=env, capture_output=True,
                                  text=True, timeout=300)
            assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr
            assert "Permission denied" in done.stderr and "Traceback" not in done.stderr, done.stderr
        assert not os.path.exists(os.path.join(folder, "o.hsic"))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def test_full_disk_leaves_no_partial_file(make_raster, tmp_path, capsys):
    """RLIMIT_FSIZE makes the kernel refuse writes past a size (EFBIG), as a full disk refuses them."""
    import hsi_gdal

    src = make_raster(bands=12, rows=64, cols=64)
    hsi_gdal.Translate(str(tmp_path / "warm.hsic"), src, device="cpu")  # imports and JIT outside the limit
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
    resource.setrlimit(resource.RLIMIT_FSIZE, (1024, hard))
    try:
        with pytest.raises(HSICIOError, match="cannot write"):
            hsi_gdal.Translate(str(tmp_path / "full.hsic"), src, device="cpu")
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("full")) == []


# The real CLI in a child process, with each tile's encoding slowed so that the kill lands mid-write.
CHILD = """
import sys, time
import engine.codecs.cae1d as m
encode = m.Cae1d.encode_tiles
m.Cae1d.encode_tiles = lambda self, tiles: (time.sleep(2), encode(self, tiles))[1]
from hsi_gdal.tools.cli import main
sys.exit(main(sys.argv[1:]))
"""


def test_kill_9_during_compress_leaves_no_file_and_next_run_cleans(make_raster, tmp_path):
    src = make_raster(bands=8, rows=96, cols=96)
    out = tmp_path / "k.hsic"
    env = dict(os.environ, PYTHONPATH=ROOT + os.pathsep + os.environ.get("PYTHONPATH", ""))
    argv = ["compress", src, str(out), "--device", "cpu", "-q", "--codec", "cae1d"]
    child = subprocess.Popen([sys.executable, "-c", CHILD, *argv], env=env, cwd=ROOT)

    def partials():  # temporary names are unique per run: k.hsic.<pid>-<random>[...].partial
        return [p for p in tmp_path.iterdir() if p.name.startswith("k.hsic.") and p.name.endswith(".partial")]

    deadline = time.time() + 300
    while not partials() and child.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    assert partials(), "the child never started writing"
    child.send_signal(signal.SIGKILL)
    child.wait()
    assert not out.exists() and partials()  # the stale temporary file of the killed run
    assert main(argv) == 0  # the next run on that target removes it (its writer is gone)
    assert out.exists() and not partials()
