"""Fuzz the .hsic reader and the sidecar decoder with mutated and truncated files.

Every case takes a small valid .hsic file (written by the real pipeline with cae1d), damages it, and
reads it the way users do: ``open_hsic`` plus every tile, then the sidecar's pixel function
(``hsi_gdal.pixelfn.decode``, i.e. ``SceneDecoder``) on a window. A case passes when the reader
accepts the file or raises one of HSIC's own errors (``engine.errors.HSICError``). Anything else is a
failure: another exception type ("unexpected"), a dead worker process ("crash", e.g. a segfault) or a
case that runs past ``--timeout`` ("hang").

Mutations (chosen per case from a seeded RNG, so a case number reproduces exactly):
  flip      1-16 random bit flips                    (CRCs must catch them)
  splice    a range replaced/inserted from elsewhere, another file or random bytes
  truncate  cut at a random length
  prefix    a prefix field (version, codec number, reserved, H, N) set to an edge value
  field     a header JSON field set to an evil value, deflated again, CRCs fixed
  huge      rows/cols/bands/tile sizes set huge (JSON, CRCs fixed)
  index     a tile offset/length edited, index CRC fixed
  payload   a tile payload damaged with its CRC fixed (reaches the mask parser and the entropy decoder)
  fixed     random flips anywhere, then every CRC fixed
  garbage   random bytes, empty files, other formats

Usage (the long run of docs/benchmarks/fuzz.md, low priority in the background)::

    nohup nice -n 19 python scripts/fuzz_container.py --cases 100000 --jobs 2 --out fuzz.json > fuzz.log 2>&1 &

``--case N`` runs one case in this process and prints its outcome (to reproduce a failure).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import select
import shutil
import struct
import subprocess
import sys
import tempfile
import time
import zlib
from collections import Counter

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

KINDS = ("flip", "splice", "truncate", "prefix", "field", "huge", "index", "payload", "fixed", "garbage")
EVIL_VALUES = [None, True, False, 0, -1, 1, 2**31, 2**31 - 1, 2**63, -(2**63), 10**400, 1e308, -0.0, 0.5,
               "", "nan", "inf", "-inf", "x" * 1000, [], [1], [None] * 3, {}, {"a": 1}, {"": ""},
               "cae1d", "deflate", "int16", "float64", "complex64", "\ud800", 65535, 65536]
HUGE_FIELDS = ("rows", "cols", "bands", "tile_rows", "tile_cols")


# -- building blocks written from docs/format.md ------------------------------------------------

def layout(data: bytes) -> tuple[int, int, int]:
    """(H, N, index position) read from a prefix (the caller checks the length)."""
    head_len, n = struct.unpack_from("<II", data, 16)
    return head_len, n, 28 + head_len


def fix_crcs(data: bytes, payloads: bool = False) -> bytes:
    """Recompute header and index CRCs (and payload CRCs): an edit is then not caught as corruption."""
    data = bytearray(data)
    if len(data) < 24:
        return bytes(data)
    head_len, n, index_pos = layout(data)
    if 28 + head_len > len(data):
        return bytes(data)
    struct.pack_into("<I", data, 24 + head_len, zlib.crc32(data[:24 + head_len]))
    index_end = index_pos + 16 * n
    if index_end + 4 > len(data):
        return bytes(data)
    if payloads:
        for i in range(n):
            off, length, _ = struct.unpack_from("<QII", data, index_pos + 16 * i)
            if off + length <= len(data):
                struct.pack_into("<I", data, index_pos + 16 * i + 12, zlib.crc32(data[off:off + length]))
    struct.pack_into("<I", data, index_end, zlib.crc32(data[index_pos:index_end]))
    return bytes(data)


def with_header(data: bytes, obj) -> bytes:
    """``data`` with its header replaced by ``obj`` as deflated JSON (header encoding 0, which readers read
    forever), offsets shifted, CRCs fixed."""
    text = json.dumps(obj, allow_nan=True).encode("utf-8", "surrogatepass")
    head = zlib.compress(text, 9)
    head_len, n, index_pos = layout(data)
    delta = len(head) - head_len
    out = bytearray(data[:24] + head + b"\0\0\0\0" + data[index_pos:])
    struct.pack_into("<H", out, 14, 0)
    struct.pack_into("<I", out, 16, len(head))
    for i in range(n):
        pos = 28 + len(head) + 16 * i
        (off,) = struct.unpack_from("<Q", out, pos)
        struct.pack_into("<Q", out, pos, max(0, off + delta))
    return fix_crcs(bytes(out))


def header_obj(data: bytes) -> dict:
    from engine.format.container import Header

    head_len, _, _ = layout(data)
    head = data[24:24 + head_len]
    if struct.unpack_from("<H", data, 14)[0] == 0:  # deflated JSON
        return json.loads(zlib.decompress(head))
    return Header.from_compact_bytes(head).to_dict()


# -- base files ----------------------------------------------------------------------------------

def make_bases(folder: str) -> list[bytes]:
    """Small valid files covering the payload variants: plain, nodata mask, NaN mask, one tile, 1 band,
    error-bounded (residual sections: int16 near-lossless, float32 lossless)."""
    import numpy as np

    from engine.pipeline import SceneInfo, compress_scene

    rng = np.random.default_rng(0)
    specs = [("int16", 12, 20, 18, 8, -32768, None), ("float32", 6, 10, 9, 4, None, None),
             ("uint16", 1, 7, 5, 8, 0, None), ("float64", 4, 9, 13, 5, float("nan"), None),
             ("uint8", 3, 16, 16, 16, 255, None), ("int16", 8, 12, 10, 6, -32768, 3.0),
             ("float32", 5, 9, 7, 5, None, 0.0)]
    bases = []
    for k, (dtype, bands, rows, cols, tile, nodata, bound) in enumerate(specs):
        cube = (rng.uniform(10, 200, (bands, rows, cols))).astype(dtype)
        if nodata is not None:
            cube[:, 0, :3] = nodata
        if dtype.startswith("float"):
            cube[0, 1, 1] = np.nan
        info = SceneInfo(rows=rows, cols=cols, bands=bands, dtype=dtype, nodata=nodata,
                         band_descriptions=tuple(f"band {i}" for i in range(bands)),
                         band_metadata=tuple({"wavelength": str(400 + i)} for i in range(bands)),
                         metadata={"SENSOR": "fuzz"}, geotransform=(0.0, 30.0, 0.0, 0.0, 0.0, -30.0))
        path = os.path.join(folder, f"base{k}.hsic")
        compress_scene(info, lambda y, x, h, w, c=cube: c[:, y:y + h, x:x + w], path, "cae1d",
                       tile_size=tile, device="cpu", max_abs_error=bound)
        with open(path, "rb") as f:
            bases.append(f.read())
    return bases


# -- mutations -----------------------------------------------------------------------------------

def mutate(rng: random.Random, bases: list[bytes]) -> tuple[str, bytes]:
    kind = rng.choice(KINDS)
    data = bytearray(rng.choice(bases))
    head_len, n, index_pos = layout(data)
    if kind == "flip":
        for _ in range(rng.randint(1, 16)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
    elif kind == "splice":
        src = rng.choice([bytes(data), rng.choice(bases), rng.randbytes(rng.randint(1, 200))])
        a = rng.randrange(len(src))
        chunk = src[a:a + rng.randint(1, 64)]
        at = rng.randrange(len(data))
        if rng.random() < 0.5:
            data[at:at + len(chunk)] = chunk  # overwrite
        else:
            data[at:at] = chunk  # insert
    elif kind == "truncate":
        del data[rng.randrange(len(data)):]
    elif kind == "prefix":
        fmt, pos = rng.choice([("<H", 8), ("<H", 10), ("<H", 12), ("<H", 14), ("<I", 16), ("<I", 20)])
        top = 0xFFFF if fmt == "<H" else 0xFFFFFFFF
        value = min(top, rng.choice([0, 1, 2, top, top - 1, rng.randrange(top + 1), 16 << 20, (16 << 20) + 1]))
        struct.pack_into(fmt, data, pos, value)
        data = bytearray(fix_crcs(bytes(data)) if rng.random() < 0.7 else data)
    elif kind in ("field", "huge"):
        obj = header_obj(bytes(data))
        if kind == "field":
            name = rng.choice(list(obj) + ["unknown_key"])
            if rng.random() < 0.1:
                obj.pop(name, None)
            elif isinstance(obj.get(name), list) and obj[name] and rng.random() < 0.5:
                obj[name][rng.randrange(len(obj[name]))] = rng.choice(EVIL_VALUES)
            else:
                obj[name] = rng.choice(EVIL_VALUES)
        else:
            for name in rng.sample(HUGE_FIELDS, rng.randint(1, 3)):
                obj[name] = rng.choice([2**31 - 1, 2**30, 65535, 100000, 1 << 20, 3 * obj[name] + 1])
        data = bytearray(with_header(bytes(data), obj))
        head_len, n, index_pos = layout(data)
        if kind == "huge" and rng.random() < 0.5:  # make the tile count agree, so later checks run
            struct.pack_into("<I", data, 20, rng.choice([n, n + 1, 2**32 - 1]))
            data = bytearray(fix_crcs(bytes(data)))
    elif kind == "index":
        i = rng.randrange(n)
        pos = index_pos + 16 * i
        if rng.random() < 0.5:
            struct.pack_into("<Q", data, pos, rng.choice([0, 2**64 - 1, 2**63, len(data), len(data) - 1,
                                                          rng.randrange(len(data))]))
        else:
            struct.pack_into("<I", data, pos + 8, rng.choice([0, 2**32 - 1, 1, len(data)]))
        data = bytearray(fix_crcs(bytes(data)))
    elif kind == "payload":
        i = rng.randrange(n)
        off, length, _ = struct.unpack_from("<QII", data, index_pos + 16 * i)
        body = bytearray(data[off:off + length])
        how = rng.randrange(4)
        if how == 0 and body:  # flips inside the payload
            for _ in range(rng.randint(1, 8)):
                body[rng.randrange(len(body))] ^= 1 << rng.randrange(8)
        elif how == 1:  # shortened (e.g. an entropy-coded string cut short)
            del body[rng.randrange(len(body) + 1):]
        elif how == 2:  # random bytes of the same length
            body = bytearray(rng.randbytes(length))
        else:  # flag byte and mask lengths edited
            body[:5] = bytes([rng.choice([0, 1, 2, 3, 255])]) + struct.pack("<I", rng.choice(
                [0, 1, 2**32 - 1, len(body)]))
        data = bytearray(data[:off] + body + data[off + length:])
        delta = len(body) - length
        struct.pack_into("<I", data, index_pos + 16 * i + 8, len(body))
        for j in range(i + 1, n):
            (o,) = struct.unpack_from("<Q", data, index_pos + 16 * j)
            struct.pack_into("<Q", data, index_pos + 16 * j, o + delta)
        data = bytearray(fix_crcs(bytes(data), payloads=True))
    elif kind == "fixed":
        for _ in range(rng.randint(1, 8)):
            data[rng.randrange(len(data))] ^= 1 << rng.randrange(8)
        data = bytearray(fix_crcs(bytes(data), payloads=True))
    else:  # garbage
        data = bytearray(rng.choice([b"", rng.randbytes(rng.randint(1, 4096)), b"\x89HSI\r\n\x1a\n",
                                     b"II*\x00" + rng.randbytes(100), bytes(data[:24]) + bytes(1000)]))
    return kind, bytes(data)


# -- one case ------------------------------------------------------------------------------------

def run_case(case: int, seed: int, bases: list[bytes], path: str) -> str:
    """Outcome of one case: 'ok', 'rejected:<HSICError subclass>' or 'unexpected:<type>: message'."""
    import numpy as np

    from engine.format.container import open_hsic
    from engine.errors import HSICError
    from hsi_gdal import pixelfn

    rng = random.Random(seed * 1_000_003 + case)
    kind, data = mutate(rng, bases)
    with open(path, "wb") as f:
        f.write(data)
    try:
        with open_hsic(path) as r:
            for i in range(min(r.n_tiles, 64)):
                r.read_tile(i)
            h = r.header
        # The sidecar path: GDAL calls the pixel function per band with a window of the raster.
        ys, xs = min(h.rows, 32), min(h.cols, 32)
        out = np.zeros((ys, xs), dtype=h.dtype)
        pixelfn.decode(None, out, 0, 0, xs, ys, h.cols, h.rows, 0, None, path=path.encode(),
                       band=str(rng.randint(1, h.bands)).encode())
        outcome = "ok"
    except HSICError as e:
        outcome = f"rejected:{type(e).__name__}"
    except Exception as e:  # noqa: BLE001 - anything else is exactly what the fuzzer looks for
        outcome = f"unexpected:{type(e).__name__}: {str(e)[:200]}"
    finally:
        with pixelfn._lock:  # one path is reused for every case: drop cached decoders
            for key in list(pixelfn._decoders):
                pixelfn._decoders.pop(key).close()
    return f"{kind} {outcome}"


def reuse_codecs() -> None:
    """Keep one codec instance per (codec, quality): loading weights per case would dominate the run.

    Decoding does not change a codec instance, so this only skips repeated loading; the decoder's
    weights digest check still runs for every file.
    """
    import functools

    import torch

    import engine.pipeline

    torch.set_num_threads(1)  # tiny tiles: one thread is faster on a shared machine, and steadier
    engine.pipeline.get_codec = functools.lru_cache(maxsize=None)(engine.pipeline.get_codec)


def worker(seed: int, folder: str) -> None:
    """Read case numbers from stdin, answer one line per case on stdout."""
    reuse_codecs()
    bases = make_bases(folder)
    path = os.path.join(folder, f"case-{os.getpid()}.hsic")
    print("ready", flush=True)
    for line in sys.stdin:
        print(run_case(int(line), seed, bases, path), flush=True)


# -- the driver ----------------------------------------------------------------------------------

class Worker:
    def __init__(self, seed: int, folder: str):
        self.proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", "--seed", str(seed),
                                      "--folder", folder], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     text=True, bufsize=1)
        if self.readline(1800) != "ready":
            raise SystemExit("fuzz worker failed to start")

    def readline(self, timeout: float) -> str | None:
        """A line, '' if the worker died, None on timeout."""
        ready, _, _ = select.select([self.proc.stdout], [], [], timeout)
        if not ready:
            return None
        return self.proc.stdout.readline().strip()

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=2000)
    p.add_argument("--start", type=int, default=0, help="first case number")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--timeout", type=float, default=30.0, help="seconds per case before it counts as a hang")
    p.add_argument("--jobs", type=int, default=1, help="worker processes (default 1)")
    p.add_argument("--out", help="write the result as JSON here")
    p.add_argument("--folder", help="scratch folder (default: a new one in /dev/shm or the temp dir)")
    p.add_argument("--case", type=int, help="run this one case here and print its outcome")
    p.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    folder = args.folder or tempfile.mkdtemp(prefix="hsic-fuzz-", dir="/dev/shm" if os.path.isdir("/dev/shm") else None)
    if args.worker:
        worker(args.seed, folder)
        return 0
    if args.case is not None:
        reuse_codecs()
        print(run_case(args.case, args.seed, make_bases(folder), os.path.join(folder, "case.hsic")))
        return 0

    t0 = time.time()
    outcomes, kinds, failures = Counter(), Counter(), []
    cases = iter(range(args.start, args.start + args.cases))
    busy: dict[Worker, tuple[int, float]] = {}  # worker -> (case, when it was sent)
    idle = [Worker(args.seed, folder) for _ in range(args.jobs)]
    done = 0

    def record(fmt_done: bool) -> None:
        result = {"cases_done": done, "cases_asked": args.cases, "complete": fmt_done, "start": args.start,
                  "seed": args.seed, "jobs": args.jobs, "timeout_s": args.timeout,
                  "wall_s": round(time.time() - t0, 1), "outcomes": dict(outcomes), "mutations": dict(kinds),
                  "crashes": outcomes["crash"], "hangs": outcomes["hang"], "unexpected": outcomes["unexpected"],
                  "failures": failures[:100], "command": " ".join([os.path.basename(sys.executable)] + sys.argv)}
        if args.out:  # rewritten as the run goes, so a stopped run still leaves its result
            with open(args.out + ".tmp", "w") as f:
                f.write(json.dumps(result, indent=2) + "\n")
            os.replace(args.out + ".tmp", args.out)
        if fmt_done:
            print(json.dumps(result, indent=2))

    while True:
        for w in idle:
            case = next(cases, None)
            if case is not None:
                w.proc.stdin.write(f"{case}\n")
                w.proc.stdin.flush()
                busy[w] = (case, time.time())
        idle = []
        if not busy:
            break
        wait = max(0.0, min(sent + args.timeout for _, sent in busy.values()) - time.time())
        ready, _, _ = select.select([w.proc.stdout for w in busy], [], [], wait)
        for w in list(busy):
            case, sent = busy[w]
            line = w.proc.stdout.readline().strip() if w.proc.stdout in ready else None
            if line is None and time.time() - sent < args.timeout:
                continue  # still working
            del busy[w]
            done += 1
            if not line:  # None: ran past the timeout; "": the worker died (e.g. a segfault)
                if line == "":
                    try:
                        w.proc.wait(timeout=10)
                    except subprocess.TimeoutExpired:
                        pass
                what = "hang" if line is None else f"crash (exit {w.proc.poll()})"
                failures.append({"case": case, "what": what})
                outcomes[what.split()[0]] += 1
                w.kill()
                w = Worker(args.seed, folder)
            else:
                kind, outcome = line.split(" ", 1)
                kinds[kind] += 1
                outcomes[outcome.split(":")[0] if outcome.startswith("unexpected") else outcome] += 1
                if outcome.startswith("unexpected"):
                    failures.append({"case": case, "what": outcome, "kind": kind})
            idle.append(w)
            if done % 1000 == 0:
                record(False)
                print(f"{done} cases, {time.time() - t0:.0f} s, {dict(outcomes)}", file=sys.stderr, flush=True)
    for w in idle:
        w.proc.stdin.close()
        w.kill()
    if not args.folder:
        shutil.rmtree(folder, ignore_errors=True)
    record(True)
    return 1 if failures else 0

if __name__ == "__main__":
    sys.exit(main())
