"""The ``klt`` codec end to end: its scene section (format 1.3), decoding from the bytes alone without
torch, band reads, the continuous rate control, nodata, integer and float scenes, 1 to 425 bands."""

import json
import os
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import numpy as np
import pytest

from engine import metrics
from engine.errors import FormatError
from engine.format.container import open_hsic
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene
from engine.rate_control import RATE_TOLERANCE, Target, compress_to_target
from engine.registry import DEFAULT_CODEC

ROOT = Path(__file__).resolve().parents[2]


def sample() -> np.ndarray:
    from osgeo import gdal

    from tests.conftest import SAMPLE

    ds = gdal.Open(str(SAMPLE))
    return ds.ReadAsArray()  # (224, 64, 96) int16 EnMAP radiances


def compress(x: np.ndarray, dst, nodata=None, **kw):
    info = SceneInfo(x.shape[1], x.shape[2], x.shape[0], str(x.dtype), nodata=nodata)
    return compress_scene(info, lambda y0, x0, h, w: x[:, y0:y0 + h, x0:x0 + w], str(dst), "klt",
                          tile_size=32, **kw)


def decode(path, **kw) -> np.ndarray:
    d = SceneDecoder(str(path))
    try:
        return d.read(**kw)
    finally:
        d.close()


def test_klt_is_the_default():
    assert DEFAULT_CODEC == "klt"


def test_scene_section_is_in_the_file_and_counted(tmp_path):
    x = sample()
    p = tmp_path / "s.hsic"
    compress(x, p, overviews=())
    with open_hsic(p) as r:
        assert r.format_version == (1, 3)
        stage = r.scene_bytes
        assert stage and len(stage) > 100
        head = struct.unpack_from("<I", p.read_bytes(), 16)[0]
        # prefix, header, its CRC, the index and its CRC, the scene section, the payloads: nothing else
        size = 24 + head + 4 + 16 * r.n_tiles + 4 + (8 + len(stage)) + sum(r.tile_lengths)
        assert size == os.path.getsize(p) == r.file_size
    out = decode(p)
    psnr = metrics.psnr(x.astype(np.float64), out.astype(np.float64), data_range=float(x.max()) - float(x.min()))
    assert psnr > 40


def test_fresh_process_decodes_from_bytes_alone_without_torch(tmp_path):
    x = sample()
    p = tmp_path / "s.hsic"
    compress(x, p)
    expected = decode(p)
    child = ("import sys, numpy as np\n"
             "from engine.pipeline import SceneDecoder\n"
             "d = SceneDecoder(sys.argv[1]); np.save(sys.argv[2], d.read()); d.close()\n"
             "assert 'torch' not in sys.modules and 'compressai' not in sys.modules, 'torch imported'\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-c", child, str(p), str(tmp_path / "out.npy")], cwd=ROOT, env=env,
                   check=True, timeout=300)
    np.testing.assert_array_equal(np.load(tmp_path / "out.npy"), expected)


def test_band_reads_decode_touched_tiles_once_and_match_the_full_read(tmp_path):
    x = sample()
    p = tmp_path / "s.hsic"
    compress(x, p)
    full = decode(p)
    d = SceneDecoder(str(p))
    try:
        for b in (3, 50, 120):  # GDAL's pixel function asks band by band
            np.testing.assert_array_equal(d.read(10, 20, 30, 40, bands=[b]), full[[b], 10:40, 20:60])
        assert d.decoded_tiles == 4  # the window touches 2 x 2 tiles of 32: decoded once for all bands
        (t,) = d.decoded([0])
        assert t.latent.shape[0] < x.shape[0]  # the cache holds the components, not the 224 bands
    finally:
        d.close()


@pytest.mark.parametrize("dtype,bands", [("uint16", 1), ("float32", 3), ("int16", 425), ("float64", 20)])
def test_integer_float_and_any_band_count(tmp_path, dtype, bands):
    base = sample().astype(np.float64)
    src = np.linspace(0, 1, base.shape[0])
    flat = base[:, :40, :50].reshape(base.shape[0], -1)
    x = np.stack([np.interp(np.linspace(0, 1, bands), src, flat[:, i]) for i in range(flat.shape[1])], 1)
    x = x.reshape(bands, 40, 50)
    x = (x / 10.0).astype(dtype) if dtype.startswith("float") else np.clip(x, 0, None).astype(dtype)
    p = tmp_path / "s.hsic"
    compress(x, p, step=0.001)
    out = decode(p)
    assert out.dtype == x.dtype and out.shape == x.shape
    rng = float(x.max()) - float(x.min())
    assert np.abs(out.astype(np.float64) - x).max() < 0.05 * rng


def test_nodata_samples_and_all_nodata_band_survive(tmp_path):
    x = sample()[:30].copy()
    x[:, :10, :10] = -1  # invalid pixels
    x[5] = -1  # a band with no valid sample: left out of the KLT
    x[7, 20:30, 40:50] = -1  # invalid samples inside valid pixels
    p = tmp_path / "s.hsic"
    compress(x, p, nodata=-1)
    out = decode(p)
    invalid = x == -1
    assert (out[invalid] == -1).all() and (out[~invalid] != -1).all()
    err = np.abs(out.astype(np.float64) - x)[~invalid]
    assert err.max() < 0.05 * (float(x[~invalid].max()) - float(x[~invalid].min()))
    with open_hsic(p) as r:
        d = SceneDecoder(str(p))
        assert not d.codec.stage.used[5] and d.codec.stage.used[4]
        d.close()


def test_all_nodata_scene(tmp_path):
    x = np.full((4, 20, 20), 7, np.uint16)
    p = tmp_path / "s.hsic"
    compress(x, p, nodata=7)
    assert (decode(p) == 7).all()


def _flip(path: Path, pos: int, fix_crc: bool) -> None:
    data = bytearray(path.read_bytes())
    head = struct.unpack_from("<I", data, 16)[0]
    n = struct.unpack_from("<I", data, 20)[0]
    start = 24 + head + 4 + 16 * n + 4  # the scene section: u32 length, bytes, u32 CRC
    (size,) = struct.unpack_from("<I", data, start)
    data[start + 4 + pos] ^= 0xFF
    if fix_crc:  # a crafted stage behind a valid CRC: the stage's own checks must refuse it
        struct.pack_into("<I", data, start + 4 + size, zlib.crc32(data[start + 4:start + 4 + size]))
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("pos,fix_crc", [(0, False), (10, False), (0, True), (3, True)])
def test_corrupt_scene_section_is_a_format_error(tmp_path, pos, fix_crc):
    p = tmp_path / "s.hsic"
    compress(sample()[:40], p)
    _flip(p, pos, fix_crc)
    with pytest.raises(FormatError):
        SceneDecoder(str(p))


def test_truncated_scene_section_is_a_format_error(tmp_path):
    p = tmp_path / "s.hsic"
    compress(sample()[:40], p)
    data = p.read_bytes()
    head = struct.unpack_from("<I", data, 16)[0]
    n = struct.unpack_from("<I", data, 20)[0]
    (tmp_path / "t.hsic").write_bytes(data[:24 + head + 4 + 16 * n + 4 + 20])
    with pytest.raises(FormatError):
        open_hsic(tmp_path / "t.hsic")


@pytest.mark.parametrize("bpppc", [0.1, 0.5, 2.0])
def test_rate_target_lands_within_tolerance_below(tmp_path, bpppc):
    x = sample()
    info = SceneInfo(x.shape[1], x.shape[2], x.shape[0], str(x.dtype))
    dst = tmp_path / "r.hsic"
    _, trials = compress_to_target(info, lambda y0, x0, h, w: x[:, y0:y0 + h, x0:x0 + w], str(dst), "klt",
                                   Target(bpppc=bpppc))
    rate = metrics.bpppc(os.path.getsize(dst), *x.shape[1:], x.shape[0])
    assert (1 - RATE_TOLERANCE) * bpppc <= rate <= bpppc, [t.describe() for t in trials]
    assert not list(tmp_path.glob("*.trial"))


def test_psnr_target_is_met_with_the_coarsest_step(tmp_path):
    x = sample()
    info = SceneInfo(x.shape[1], x.shape[2], x.shape[0], str(x.dtype))
    dst = tmp_path / "r.hsic"
    _, trials = compress_to_target(info, lambda y0, x0, h, w: x[:, y0:y0 + h, x0:x0 + w], str(dst), "klt",
                                   Target(min_psnr=45.0))
    chosen = [t for t in trials if t.bpppc == metrics.bpppc(os.path.getsize(dst), *x.shape[1:], x.shape[0])]
    assert chosen and chosen[0].min_tile_psnr >= 45.0
    coarser = [t for t in trials if t.step > chosen[0].step]
    assert coarser and all(t.min_tile_psnr < 45.0 for t in coarser)
    assert min(t.step for t in coarser) <= chosen[0].step * 1.03  # bracketed to 3 % of the step


def test_error_bounded_mode_keeps_the_cheapest_klt_base(tmp_path):
    from engine.rate_control import compress_bounded

    x = sample()[:60, :32, :48].copy()
    info = SceneInfo(x.shape[1], x.shape[2], x.shape[0], str(x.dtype))
    dst = tmp_path / "e.hsic"
    header, trials = compress_bounded(info, lambda y0, x0, h, w: x[:, y0:y0 + h, x0:x0 + w], str(dst), "klt", 3.0)
    assert header.max_abs_error == 3.0 and len(trials) == 5
    rate = metrics.bpppc(os.path.getsize(dst), *x.shape[1:], x.shape[0])
    assert rate == min(t.bpppc for t in trials)
    assert np.abs(decode(dst).astype(np.int64) - x).max() <= 3
    assert not list(tmp_path.glob("*.trial"))
