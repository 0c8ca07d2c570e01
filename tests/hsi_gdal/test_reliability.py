"""Issue 17 through the public API and the CLI: a full disk, a killed run, odd inputs and odd headers
end in one line and leave the target as it was, or succeed with a valid output."""

import os
import pickle
import resource
import shutil
import signal
import subprocess

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from engine.pipeline import SceneInfo, compress_scene
from hsi_gdal.tools.cli import main


def one_line_error(capsys, argv):
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err and "Exception ignored" not in err, err
    return err


class file_size_limit:
    """RLIMIT_FSIZE: the kernel refuses writes past ``nbytes`` in any one file (EFBIG), as a full disk does."""

    def __init__(self, nbytes):
        self.nbytes = nbytes

    def __enter__(self):
        self.soft, self.hard = resource.getrlimit(resource.RLIMIT_FSIZE)
        self.old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # else the kernel kills the process
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.nbytes, self.hard))

    def __exit__(self, *exc):
        resource.setrlimit(resource.RLIMIT_FSIZE, (self.soft, self.hard))
        signal.signal(signal.SIGXFSZ, self.old)


def test_full_disk_while_writing_the_sidecar_leaves_nothing(make_raster, tmp_path, monkeypatch, capsys):
    import hsi_gdal.sidecar

    src = make_raster(bands=4, rows=12, cols=12)
    out = tmp_path / "x.hsic"
    assert main(["compress", src, str(tmp_path / "warm.hsic"), "--device", "cpu", "-q"]) == 0
    real = hsi_gdal.sidecar.sidecar_xml
    # The .hsic (a few KB) fits under the limit; the sidecar, made large, does not.
    monkeypatch.setattr(hsi_gdal.sidecar, "sidecar_xml", lambda *a, **k: real(*a, **k) + " " * (1 << 20))
    with file_size_limit(256 << 10):
        err = one_line_error(capsys, ["compress", src, str(out), "--device", "cpu", "-q"])
    assert "x.hsic" in err
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.")) == []


def test_full_disk_while_replacing_keeps_the_old_pair(make_raster, tmp_path, monkeypatch, capsys):
    import hsi_gdal.sidecar

    src = make_raster(bands=4, rows=12, cols=12)
    out = tmp_path / "x.hsic"
    assert main(["compress", src, str(out), "--device", "cpu", "-q"]) == 0
    before = out.read_bytes(), (tmp_path / "x.hsic.vrt").read_bytes()
    real = hsi_gdal.sidecar.sidecar_xml
    monkeypatch.setattr(hsi_gdal.sidecar, "sidecar_xml", lambda *a, **k: real(*a, **k) + " " * (1 << 20))
    with file_size_limit(256 << 10):
        one_line_error(capsys, ["compress", src, str(out), "--device", "cpu", "-q", "--quality", "1"])
    assert (out.read_bytes(), (tmp_path / "x.hsic.vrt").read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("x.")) == ["x.hsic", "x.hsic.qml",
                                                                                     "x.hsic.vrt"]


@pytest.fixture
def tiny_disk(tmp_path):
    """A 200 KB tmpfs (root only; skipped elsewhere): a real full disk, whose errors GDAL reports late."""
    folder = tmp_path / "disk"
    folder.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=200k", "tmpfs", str(folder)], capture_output=True)
    if r.returncode != 0:
        pytest.skip("cannot mount a tmpfs here")
    yield folder
    subprocess.run(["umount", str(folder)], check=True)


@pytest.mark.parametrize("ext", [".img", ".tif"])
def test_full_disk_on_decompress_leaves_nothing_and_no_noise(make_raster, tmp_path, tiny_disk, capsys,
                                                            monkeypatch, ext):
    src = make_raster(bands=6, rows=200, cols=200)  # 480 KB of samples, noisy: DEFLATE cannot fit it either
    hsic = str(tmp_path / "s.hsic")
    assert main(["compress", src, hsic, "--device", "cpu", "-q"]) == 0
    unraisable = []
    monkeypatch.setattr("sys.unraisablehook", unraisable.append)  # "Exception ignored ..." noise
    err = one_line_error(capsys, ["decompress", hsic, str(tiny_disk / f"d{ext}"), "--device", "cpu", "-q"])
    assert "cannot write" in err and not unraisable
    assert os.listdir(tiny_disk) == []


def test_signed_bytes_are_refused_in_one_line(tmp_path, capsys):
    path = str(tmp_path / "s8.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 8, 8, 3, gdal.GDT_Byte, ["PIXELTYPE=SIGNEDBYTE"])
    for i in range(3):
        ds.GetRasterBand(i + 1).WriteArray(np.full((8, 8), 200, dtype=np.uint8))  # -56 as a signed byte
    ds = None
    ds = gdal.Open(path)  # held: a band outliving its dataset crashes GDAL's bindings
    if ds.GetRasterBand(1).GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") != "SIGNEDBYTE":
        pytest.skip("this GDAL reads signed bytes as Int8: they are kept")
    ds = None
    err = one_line_error(capsys, ["compress", path, str(tmp_path / "s8.hsic"), "--device", "cpu", "-q"])
    assert "SIGNEDBYTE" in err and os.listdir(tmp_path) == ["s8.tif"]


def test_new_hsic_beside_an_old_sidecar_gets_its_sidecar_rewritten(make_raster, tmp_path):
    """kill -9 between renaming the .hsic and its sidecar: the sidecar's key says it is stale."""
    a = make_raster("a.tif", bands=4, rows=12, cols=12)
    b = make_raster("b.tif", bands=5, rows=20, cols=16, seed=1)
    out, other = tmp_path / "out.hsic", tmp_path / "other.hsic"
    hsi_gdal.Translate(str(out), a, device="cpu")
    hsi_gdal.Translate(str(other), b, device="cpu")
    shutil.copyfile(other, out)  # the new .hsic is in place, the old sidecar still beside it
    assert not hsi_gdal.sidecar.sidecar_is_current(str(out))
    vrt, header, written = hsi_gdal.ensure_sidecar(str(out))
    assert written and header.bands == 5 and hsi_gdal.sidecar.sidecar_is_current(str(out))
    hsi_gdal.allow_decoder()
    ds = gdal.Open(vrt)
    assert (ds.RasterCount, ds.RasterYSize, ds.RasterXSize) == (5, 20, 16)
    assert ds.ReadAsArray().shape == (5, 20, 16)
    assert hsi_gdal.ensure_sidecar(str(out))[2] is False  # now current: left alone


def test_weights_that_are_not_weights_are_one_line(make_raster, tmp_path, capsys):
    src = make_raster(bands=4, rows=8, cols=8)

    class Evil:
        def __reduce__(self):
            return (os.system, ("touch " + str(tmp_path / "pwned"),))

    evil = tmp_path / "evil.pt"
    evil.write_bytes(pickle.dumps(Evil()))
    for weights in ("/etc/passwd", str(evil)):
        err = one_line_error(capsys, ["compress", src, str(tmp_path / "w.hsic"), "--device", "cpu", "-q",
                                      "--weights", weights])
        assert "weights" in err
    assert not (tmp_path / "pwned").exists() and not (tmp_path / "w.hsic").exists()


def test_no_geotransform_stays_unset_in_the_decoded_geotiff(tmp_path):
    path = str(tmp_path / "plain.tif")
    ds = gdal.GetDriverByName("GTiff").Create(path, 10, 9, 4, gdal.GDT_Int16)
    for i in range(4):
        ds.GetRasterBand(i + 1).WriteArray(np.arange(90, dtype=np.int16).reshape(9, 10) + 100 * i)
    ds = None
    assert gdal.Open(path).GetGeoTransform(can_return_null=True) is None
    hsi_gdal.Translate(str(tmp_path / "p.hsic"), path, device="cpu")
    for ext in (".tif", ".img"):
        hsi_gdal.Translate(str(tmp_path / f"d{ext}"), str(tmp_path / "p.hsic"), device="cpu")
        assert gdal.Open(str(tmp_path / f"d{ext}")).GetGeoTransform(can_return_null=True) is None


def test_env_appends_to_the_trusted_modules_already_set():
    from hsi_gdal.gdal_env import TRUSTED_MODULES_KEY, env_lines

    script = "\n".join(env_lines()) + f"\necho ${TRUSTED_MODULES_KEY}"
    for before, after in (("mine.mod", "mine.mod,hsi_gdal.pixelfn"), ("", "hsi_gdal.pixelfn")):
        env = dict(os.environ, **{TRUSTED_MODULES_KEY: before})
        r = subprocess.run(["bash", "-c", script], capture_output=True, text=True, env=env)
        assert r.stdout.strip() == after


def test_unparsable_crs_is_skipped_with_one_warning(tmp_path, capsys):
    cube = np.arange(3 * 6 * 5, dtype=np.int16).reshape(3, 6, 5)
    hsic = str(tmp_path / "c.hsic")
    compress_scene(SceneInfo(6, 5, 3, "int16", crs_wkt="PROJCS[garbage", geotransform=(10, 1, 0, 20, 0, -1)),
                   lambda y, x, h, w: cube[:, y:y + h, x:x + w], hsic, "cae1d", device="cpu", overviews=())
    with pytest.warns(UserWarning, match="CRS of .* is not valid WKT"):  # the CLI prints it as one line
        assert main(["decompress", hsic, str(tmp_path / "c.tif"), "--device", "cpu", "-q"]) == 0
    ds = gdal.Open(str(tmp_path / "c.tif"))
    assert ds.GetProjection() == "" and ds.GetGeoTransform() == (10, 1, 0, 20, 0, -1)
