"""Issue 17 at the engine level: crafted headers cannot exhaust memory, reach odd files as weights or
break the overview parser, and two writers of one file never corrupt it."""

import os
import resource
import struct
import subprocess
import sys
import textwrap
import threading
import time
import zlib

import numpy as np
import pytest

from engine import weight_files
from engine.errors import CodecError, FormatError, InputError
from engine.format.container import Header, open_hsic, write_hsic
from engine.format.overview import MAGIC as OVR_MAGIC
from engine.pipeline import SceneDecoder, SceneInfo, compress_scene

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def crafted(path, payload=b"\0" * 64, trailer=b"", **fields):
    """A .hsic file with a hand-made header and payloads (the container does not judge tile sizes)."""
    fields = {"rows": 1, "cols": 1, "bands": 4, "dtype": "int16", "tile_rows": 1, "tile_cols": 1, "codec": "cae1d",
              "quality": 2, **fields}
    header = Header.create(**fields)
    write_hsic(path, header, [payload] * header.n_tiles, trailer=trailer)
    return str(path)


# The decoder in a child process whose address space is capped: a tile-size bomb must fail fast with
# a one-line error and cannot take the machine down whatever happens.
CAPPED = textwrap.dedent("""
    import resource, sys
    resource.setrlimit(resource.RLIMIT_AS, (int(sys.argv[1]), int(sys.argv[1])))
    from hsi_gdal.tools.cli import main
    sys.exit(main(sys.argv[2:]))
""")


@pytest.mark.parametrize("tile", [1024, 4096, 16384])
def test_tile_size_bomb_fails_fast_under_capped_memory(tmp_path, tile):
    # 1 x 1 pixel, a spatial codec, tiles declared far beyond the 512 x 512 the format allows.
    from engine.registry import get_codec

    coder = get_codec("sscnet", 1, "cpu")
    path = crafted(tmp_path / "bomb.hsic", codec="sscnet", quality=1,
                   tile_rows=tile, tile_cols=tile, weights_sha256=coder.weights_sha256)
    limit = 6 << 30  # torch and GDAL map a few GB of address space just by being imported
    env = dict(os.environ, PYTHONPATH=ROOT)
    t0 = time.time()
    r = subprocess.run([sys.executable, "-c", CAPPED, str(limit), "decompress", path, str(tmp_path / "o.tif"),
                        "--device", "cpu", "-q"], capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    assert r.returncode == 2, r.stderr[-2000:]
    assert r.stderr.count("\n") == 1 and "512 x 512" in r.stderr, r.stderr
    assert not os.path.exists(tmp_path / "o.tif") and time.time() - t0 < 120
    with pytest.raises(FormatError, match="512 x 512"):  # the sidecar's pixel function opens the same way
        SceneDecoder(path, device="cpu")


def test_two_writers_of_one_target_never_corrupt_it(tmp_path):
    """Writer B runs to completion while writer A is midway: both must leave a valid file."""
    target = tmp_path / "same.hsic"
    header = Header.create(rows=8, cols=8, bands=2, dtype="uint8", tile_rows=2, tile_cols=2, codec="cae1d",
                           quality=2)

    def tiles(fill, interleave=None):
        for i in range(header.n_tiles):
            if i == 3 and interleave:
                interleave()
            yield bytes([fill]) * (50 + i)

    write_hsic(target, header, tiles(1, lambda: write_hsic(target, header, tiles(2))))
    with open_hsic(target) as r:
        assert [r.read_tile(i) for i in range(r.n_tiles)] == [bytes([1]) * (50 + i) for i in range(header.n_tiles)]
    assert os.listdir(tmp_path) == ["same.hsic"]

    # And truly concurrent, from threads: every outcome is one of the two complete files.
    errors = []

    def run(fill):
        try:
            write_hsic(target, header, tiles(fill))
        except Exception as e:  # noqa: BLE001
            errors.append(e)

    threads = [threading.Thread(target=run, args=(f,)) for f in range(3, 9)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    with open_hsic(target) as r:
        assert len({r.read_tile(i)[0] for i in range(r.n_tiles)}) == 1
    assert os.listdir(tmp_path) == ["same.hsic"]


def test_stale_partials_of_dead_writers_are_removed_not_live_ones(tmp_path):
    target = tmp_path / "t.hsic"
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f"t.hsic.{int(dead.stdout)}-0123abcd.partial"
    live = tmp_path / f"t.hsic.{os.getpid()}-89abcdef.partial"
    legacy = tmp_path / "t.hsic.partial"
    for p in (stale, live, legacy):
        p.write_bytes(b"half")
    crafted(target)
    assert not stale.exists() and not legacy.exists() and live.exists()


@pytest.mark.parametrize("recorded", ["/proc/kmsg", "/proc/self/mem", "/etc/passwd", "fifo.pt", "big.pt",
                                      "unreadable.pt", "dir.pt"])
def test_weights_path_from_a_crafted_header_is_checked_before_opening(tmp_path, monkeypatch, recorded):
    os.mkfifo(tmp_path / "fifo.pt")
    with open(tmp_path / "big.pt", "wb") as f:  # sparse: 3 GiB on paper, nothing on disk
        f.truncate(3 << 30)
    (tmp_path / "unreadable.pt").write_bytes(b"x" * 100)
    os.chmod(tmp_path / "unreadable.pt", 0)
    (tmp_path / "dir.pt").mkdir()
    path = recorded if recorded.startswith("/") else str(tmp_path / recorded)
    hashed = []
    real = weight_files.file_sha256

    def spy(p):
        hashed.append(str(p))
        return real(p)

    monkeypatch.setattr(weight_files, "file_sha256", spy)
    import engine.user_weights

    monkeypatch.setattr(engine.user_weights, "file_sha256", spy)
    hsic = crafted(tmp_path / "w.hsic", weights_sha256="ab" * 32,
                   codec_options={"weights_file": os.path.basename(path), "weights_path": path})
    t0 = time.time()
    with pytest.raises(CodecError) as e:
        SceneDecoder(hsic, device="cpu")
    assert "\n" not in str(e.value) and time.time() - t0 < 10
    readable_anyway = recorded == "unreadable.pt" and os.access(path, os.R_OK)  # root reads it
    assert path not in hashed or readable_anyway
    if recorded in ("/etc/passwd", "unreadable.pt"):
        return  # named by the user, a regular readable file is hashed: only its digest decides
    # Named by the user, the other files are refused in one line before any hashing.
    with pytest.raises(CodecError):
        SceneDecoder(hsic, device="cpu", weights=path)
    assert path not in hashed


def test_weights_files_are_bounded_and_regular(tmp_path):
    with open(tmp_path / "big.pt", "wb") as f:
        f.truncate(weight_files.MAX_WEIGHTS_BYTES + 1)
    for p in ("/proc/kmsg", "/dev/zero", str(tmp_path), str(tmp_path / "big.pt"), str(tmp_path / "none.pt")):
        with pytest.raises(CodecError):
            weight_files.check_weights_file(p)


def overview_trailer(descriptor: bytes) -> bytes:
    head = OVR_MAGIC + struct.pack("<I", len(descriptor)) + descriptor
    head += struct.pack("<I", zlib.crc32(head))
    index = b""
    return head + index + struct.pack("<I", zlib.crc32(index))


@pytest.mark.parametrize("descriptor", [
    b'{"levels": [{"factor": 1e400, "rows": 1, "cols": 1}]}',
    b'{"levels": [{"factor": -1e400, "rows": 1, "cols": 1}]}',
    b'{"levels": ' + b"[" * 100000 + b"]" * 100000 + b"}",
    b'{"levels": [{"factor": "2"}]}',
    b'{"levels": 7}',
])
def test_crafted_overview_sections_are_format_errors(tmp_path, descriptor):
    from engine.overviews import read_levels

    path = crafted(tmp_path / "o.hsic", trailer=overview_trailer(descriptor))
    with open_hsic(path) as r, pytest.raises(FormatError):
        read_levels(r)


def test_impossible_scene_sizes_are_refused_before_reading(tmp_path):
    info = SceneInfo(rows=2_000_000_000, cols=2_000_000_000, bands=224, dtype="int16")

    def never(*window):
        raise AssertionError("the scene was read")

    t0 = time.time()
    with pytest.raises(InputError, match="more than a .hsic file can index"):
        compress_scene(info, never, str(tmp_path / "huge.hsic"), "cae1d", device="cpu", overviews=())
    assert time.time() - t0 < 5 and os.listdir(tmp_path) == []


@pytest.fixture(scope="module")
def small(tmp_path_factory):
    folder = tmp_path_factory.mktemp("rel")
    cube = np.random.default_rng(0).uniform(100, 3000, (3, 6, 5)).astype("int16")
    path = str(folder / "s.hsic")
    compress_scene(SceneInfo(6, 5, 3, "int16"), lambda y, x, h, w: cube[:, y:y + h, x:x + w], path, "cae1d",
                   device="cpu", tile_size=4, overviews=())
    return path


@pytest.mark.parametrize("band", ["0", "-5", "4"])
def test_sidecar_band_outside_the_raster_is_refused(small, band):
    from hsi_gdal.pixelfn import decode

    out = np.zeros((2, 2))
    with pytest.raises(InputError, match="band"):
        decode(None, out, 0, 0, 2, 2, 5, 6, 0, None, path=small, band=band)
    with pytest.raises(InputError):
        SceneDecoder(small, device="cpu").read(0, 0, 2, 2, bands=[int(band) - 1])


def test_header_json_of_crafted_families_is_checked(tmp_path):
    # Declared sizes the container accepts but the decoder must refuse before allocating anything.
    for fields in ({"rows": 2**31 - 1, "cols": 2**31 - 1, "tile_rows": 2**31 - 1, "tile_cols": 2**31 - 1},
                   {"bands": 65535, "tile_rows": 512, "tile_cols": 512, "rows": 512, "cols": 512}):
        try:
            path = crafted(tmp_path / "f.hsic", **fields)
        except InputError:
            continue  # too many tiles to index: refused on writing
        with pytest.raises(FormatError):
            SceneDecoder(path, device="cpu")
