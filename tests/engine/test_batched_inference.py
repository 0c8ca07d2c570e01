"""Batched inference writes the same bytes as tile-by-tile coding; decoding is bit-identical whatever the
batch size, the run or the thread count (checked in fresh processes with 1 and 2 threads)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from engine.codecs.base import BATCH_ENV, batch_tiles, same_shape_runs
from engine.errors import InputError
from engine.registry import get_codec, list_codecs
from tests.engine.test_codecs import smooth_tile
from tests.scene_stage import codec_on

CODEC_IDS = [i.id for i in list_codecs()]
ROOT = Path(__file__).resolve().parents[2]


def _tiles(codec_id):
    tiles = [smooth_tile(224, 16, 16, seed=s) for s in range(3)]
    if codec_id.startswith("cae1d"):  # per-pixel codecs code cropped edge tiles: mixed shapes in one batch
        tiles.insert(1, smooth_tile(224, 5, 9, seed=7))
    return tiles


@pytest.mark.parametrize("codec_id", CODEC_IDS)
def test_batched_bytes_and_decodes_equal_single_tile(codec_id, monkeypatch):
    tiles = _tiles(codec_id)
    monkeypatch.setenv(BATCH_ENV, "1")
    single = codec_on(codec_id, tiles[0])
    one = [single.encode_tile(t) for t in tiles]
    dec_one = [single.decode_tile(d, t.shape) for d, t in zip(one, tiles)]
    monkeypatch.setenv(BATCH_ENV, "3")
    batched = codec_on(codec_id, tiles[0])
    assert batched.batch_size == 3
    many = batched.encode_tiles(tiles)
    assert many == one
    dec_many = batched.decode_tiles([(d, t.shape) for d, t in zip(many, tiles)])
    for a, b in zip(dec_one, dec_many):
        assert a.dtype == b.dtype == np.float32
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("codec_id", ["sscnet", "cae1d"])
def test_scene_coded_in_batches_is_byte_identical(codec_id, make_raster, tmp_path, monkeypatch):
    from engine.pipeline import SceneDecoder, compress_scene
    from hsi_gdal.source import RasterSource

    src = RasterSource(make_raster(bands=12, rows=70, cols=50))  # 5 x 4 tiles of 16, cropped at the edges
    outs = {}
    for n in ("1", "4"):
        monkeypatch.setenv(BATCH_ENV, n)
        dst = tmp_path / f"b{n}.hsic"
        compress_scene(src.info, src.read_window, str(dst), codec_id, tile_size=16, device="cpu", overviews=())
        dec = SceneDecoder(str(dst), device="cpu")
        assert dec.codec.batch_size == int(n)
        outs[n] = (dst.read_bytes(), dec.read(), dec.decoded_tiles)
        dec.close()
    assert outs["1"][0] == outs["4"][0]
    np.testing.assert_array_equal(outs["1"][1], outs["4"][1])
    assert outs["1"][2] == outs["4"][2] == 5 * 4  # every tile decoded once


def test_batch_env_is_checked(monkeypatch):
    monkeypatch.setenv(BATCH_ENV, "0")
    with pytest.raises(InputError, match=BATCH_ENV):
        batch_tiles("cpu")
    monkeypatch.setenv(BATCH_ENV, "x")
    with pytest.raises(InputError, match=BATCH_ENV):
        batch_tiles("cpu")
    monkeypatch.delenv(BATCH_ENV)
    assert batch_tiles("cpu") == 1 and batch_tiles("cuda") > 1


def test_threads_env_is_checked(monkeypatch):
    from engine.parallel import THREADS_ENV, threads

    for bad in ("0", "-2", "two"):
        monkeypatch.setenv(THREADS_ENV, bad)
        with pytest.raises(InputError, match=THREADS_ENV):
            threads()
    monkeypatch.setenv(THREADS_ENV, "3")
    assert threads() == 3
    monkeypatch.delenv(THREADS_ENV)
    assert threads() >= 1


def test_same_shape_runs():
    shapes = [(1, 2), (1, 2), (1, 2), (3, 4), (1, 2)]
    assert same_shape_runs(shapes, 2) == [[0, 1], [2], [3], [4]]
    assert same_shape_runs(shapes, 8) == [[0, 1, 2], [3], [4]]


# Decodes every bitstream given on stdin (JSON: codec id -> [path, shape]) with the thread count given,
# writing each result to path + ".<threads>.npy".
CHILD = """
import json, sys
import numpy as np
import torch
torch.set_num_threads(int(sys.argv[1]))
from engine.registry import get_codec
for codec_id, (path, shape) in json.load(sys.stdin).items():
    codec = get_codec(codec_id, device="cpu")
    if codec.uses_scene_stage:  # from the stage's bytes alone, as a decoder reads them from the file
        codec.bind_scene(open(path + ".stage", "rb").read(), shape[0])
    out = codec.decode_tile(open(path, "rb").read(), tuple(shape))
    np.save(path + "." + sys.argv[1] + ".npy", out)
"""


def test_decode_is_bit_identical_in_fresh_processes_with_1_and_2_threads(tmp_path):
    jobs, expected = {}, {}
    for codec_id in CODEC_IDS:
        tile = smooth_tile(224, 24, 20, seed=3)
        codec = codec_on(codec_id, tile)
        data = codec.encode_tile(tile)
        path = tmp_path / f"{codec_id}.bin"
        path.write_bytes(data)
        if codec.uses_scene_stage:
            (tmp_path / f"{codec_id}.bin.stage").write_bytes(codec.stage.to_bytes())
        jobs[codec_id] = [str(path), list(tile.shape)]
        expected[codec_id] = codec.decode_tile(data, tile.shape)
    for threads in ("1", "2"):
        env = dict(os.environ, OMP_NUM_THREADS=threads, PYTHONPATH=str(ROOT))
        env.pop(BATCH_ENV, None)
        subprocess.run([sys.executable, "-c", CHILD, threads], input=json.dumps(jobs), text=True, env=env,
                       cwd=ROOT, check=True, timeout=300)
        for codec_id, (path, _) in jobs.items():
            got = np.load(path + f".{threads}.npy")
            assert np.array_equal(got, expected[codec_id]), f"{codec_id}: decode differs with {threads} threads"


def test_decompress_to_file_decodes_each_tile_once_without_cache(make_raster, tmp_path, monkeypatch):
    import hsi_gdal
    from engine.pipeline import SceneDecoder
    from hsi_gdal import dataset

    src = make_raster(bands=6, rows=300, cols=280)
    hsic = str(tmp_path / "s.hsic")
    hsi_gdal.Translate(hsic, src, codec="cae1d", device="cpu", tile_size=64)  # 64 divides the 256 window
    seen = []
    orig = dataset.HsicDataset.set_cache_bytes
    monkeypatch.setattr(dataset.HsicDataset, "set_cache_bytes",
                        lambda self, n: (seen.append(self), orig(self, n))[1])
    out = hsi_gdal.Translate(str(tmp_path / "d.tif"), hsic)
    (ds,) = seen
    assert len(ds._decoder._cache) == 1 and ds._decoder.decoded_tiles == 5 * 5  # every tile once
    ref = SceneDecoder(hsic, device="cpu")
    np.testing.assert_array_equal(out.ReadAsArray(), ref.read())
    ref.close()
