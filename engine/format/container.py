"""The ``.hsic`` container: a header and independently coded tiles, each behind a CRC32.

The byte layout is specified in ``docs/format.md``; this module is its only implementation. Writing
is atomic (a temporary name unique to the writer, then ``os.replace``) and streams tile payloads. Reading validates every
size against the real file size before allocating anything, so a corrupt or hostile file fails fast
with :class:`FormatError` instead of exhausting memory, and tiles can be read from several threads.
"""

from __future__ import annotations

import json
import math
import numbers
import os
import re
import secrets
import stat
import struct
import threading
import zlib
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

from engine.codec_ids import CODEC_NUMBERS, codec_id, codec_number
from engine.errors import FormatError, HSICError, HSICIOError, InputError
from engine.format.header_codec import decode_compact, encode_compact, loads_strict

__all__ = [
    "MAGIC", "FORMAT_MAJOR", "FORMAT_MINOR", "SCENE_MINOR", "JSON_HEADER", "COMPACT_HEADER", "SUPPORTED_DTYPES",
    "Header", "HsicReader",
    "open_hsic", "write_hsic", "partial_name", "remove_stale_partials",
]

MAGIC = b"\x89HSI\r\n\x1a\n"
FORMAT_MAJOR = 1
FORMAT_MINOR = 0
TRAILER_MINOR = 1  # minor version of files with a trailer after the last payload (format 1.1)
BOUNDED_MINOR = 2  # minor version of error-bounded files (header max_abs_error, format 1.2)
SCENE_MINOR = 3  # minor version of files with a scene section before the payloads (format 1.3)
# The prefix's header encoding (u16 at offset 14, "reserved, 0" before it had a use): how the header
# bytes are stored. Orthogonal to the minor version, which says which sections the file has.
JSON_HEADER = 0  # deflated JSON: every file written before the compact header, read forever
COMPACT_HEADER = 1  # per-band columns, LZMA2 or deflate (engine/format/header_codec.py): what writers write
MAX_SCENE_BYTES = 64 << 20  # a codec's scene side information (e.g. a KLT stage): far below this
SUPPORTED_DTYPES = ("uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64")

MAX_HEADER_BYTES = 16 << 20
MAX_CODEC_OPTIONS_BYTES = 64 << 10
_U32_MAX = 0xFFFFFFFF

# magic, major, minor, codec number, header encoding, header length, tile count
PREFIX = struct.Struct("<8sHHHHII")
_CRC = struct.Struct("<I")
_INDEX_ENTRY = struct.Struct("<QII")  # payload offset, length, CRC32
assert PREFIX.size == 24 and _INDEX_ENTRY.size == 16
INDEX_ENTRY_BYTES = _INDEX_ENTRY.size  # a tile's entry in the index: what a rate estimate counts per tile

_SHA256_HEX = re.compile(r"[0-9a-f]{64}")
# JSON has no NaN/Infinity; floats that may be non-finite are written as these strings.
_NONFINITE_NAMES = {"nan": math.nan, "inf": math.inf, "-inf": -math.inf}

PathLike = str | os.PathLike


# ---------------------------------------------------------------------------------------------
# Header
# ---------------------------------------------------------------------------------------------

def _bad(name: str, value: object, expected: str) -> FormatError:
    shown = repr(value)
    if len(shown) > 80:  # keep the message one readable line whatever the file holds
        shown = shown[:77] + "..."
    return FormatError(f"header field {name!r} must be {expected}, got {shown}")


def _int(name: str, value: object, lo: int, hi: int | None = None) -> int:
    # bool is an int subclass, but True as a size is always a mistake.
    ok = isinstance(value, numbers.Integral) and not isinstance(value, bool)
    if not ok or value < lo or (hi is not None and value > hi):
        raise _bad(name, value, f"an integer in [{lo}, {hi if hi is not None else 'inf'}]")
    return int(value)


def _real(name: str, value: object, finite: bool = False) -> float:
    if not isinstance(value, numbers.Real) or isinstance(value, bool):
        raise _bad(name, value, "a number")
    try:
        value = float(value)
    except OverflowError:  # a JSON integer like 1e400 written out in full
        raise _bad(name, value, "a number within float range") from None
    if finite and not math.isfinite(value):
        raise _bad(name, value, "a finite number")
    return value


def _opt_real(name: str, value: object) -> float | None:
    return None if value is None else _real(name, value)


def _str(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise _bad(name, value, "a string")
    return value


def _str_dict(name: str, value: object) -> dict[str, str]:
    if not isinstance(value, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        raise _bad(name, value, "a dict of str to str")
    return dict(value)  # a copy, so later changes to the caller's dict do not leak in


def _per_band(name: str, value: object, bands: int, check) -> tuple:
    if not isinstance(value, (tuple, list)) or len(value) != bands:
        raise _bad(name, value, f"a sequence of {bands} values (one per band)")
    return tuple(check(f"{name}[{i}]", v) for i, v in enumerate(value))



def _float_to_json(value: float | None) -> float | str | None:
    if value is None or math.isfinite(value):
        return value
    return "nan" if math.isnan(value) else ("inf" if value > 0 else "-inf")


def _float_from_json(name: str, value: object) -> float | None:
    # Strict: only a JSON number, null, or one of the three spellings this module writes.
    if isinstance(value, str):
        if value not in _NONFINITE_NAMES:
            raise _bad(name, value, 'a number, "nan", "inf" or "-inf"')
        return _NONFINITE_NAMES[value]
    return value  # type-checked by Header.__post_init__


@dataclass(frozen=True, kw_only=True)
class Header:
    """Everything a .hsic file records besides tile payloads (stored as JSON in the file).

    Construct with keywords. The per-band fields (``band_descriptions``, ``band_metadata``,
    ``band_scale``, ``band_offset``) default to ``()``, which is filled with one default per band
    ("", {}, None, None); lists are turned into tuples and numbers into ``float``/``int``.
    Invalid values raise :class:`FormatError` naming the field and quoting the value.
    Normalisation per band: ``x_norm = (x - norm_offset[b]) / norm_scale[b]``.
    """

    rows: int
    cols: int
    bands: int
    dtype: str  # numpy dtype name of the source samples, one of SUPPORTED_DTYPES
    tile_rows: int
    tile_cols: int
    codec: str  # codec id, a key of engine.codec_ids.CODEC_NUMBERS
    quality: int
    norm_offset: tuple[float, ...]
    norm_scale: tuple[float, ...]
    nodata: float | None = None  # may be NaN
    weights_sha256: str = ""  # hex SHA-256 of the weights file, "" for codecs without weights
    crs_wkt: str = ""
    geotransform: tuple[float, ...] | None = None  # GDAL order, 6 finite floats
    band_descriptions: tuple[str, ...] = ()
    band_metadata: tuple[dict[str, str], ...] = ()
    band_scale: tuple[float | None, ...] = ()
    band_offset: tuple[float | None, ...] = ()
    metadata: dict[str, str] = field(default_factory=dict)
    codec_options: dict[str, Any] = field(default_factory=dict)
    # Format 1.2: every valid sample decodes within this of the source (0: lossless); None: not bounded.
    max_abs_error: float | None = None
    # Optional (format 1.x readers ignore it): per band {min, max, mean, std, valid_percent, histogram
    # {min, max, counts}} of the source, or {} for a band without valid samples; () when not recorded.

    def __post_init__(self) -> None:
        def put(name: str, value: object) -> None:
            object.__setattr__(self, name, value)  # the dataclass is frozen

        put("rows", _int("rows", self.rows, 1, 2**31 - 1))
        put("cols", _int("cols", self.cols, 1, 2**31 - 1))
        bands = _int("bands", self.bands, 1, 65535)
        put("bands", bands)
        if self.dtype not in SUPPORTED_DTYPES:
            raise _bad("dtype", self.dtype, f"one of {', '.join(SUPPORTED_DTYPES)}")
        put("nodata", _opt_real("nodata", self.nodata))
        put("tile_rows", _int("tile_rows", self.tile_rows, 1, 2**31 - 1))
        put("tile_cols", _int("tile_cols", self.tile_cols, 1, 2**31 - 1))
        if not isinstance(self.codec, str) or self.codec not in CODEC_NUMBERS:
            raise _bad("codec", self.codec, f"a known codec id ({', '.join(CODEC_NUMBERS)})")
        put("quality", _int("quality", self.quality, 0))
        sha = _str("weights_sha256", self.weights_sha256)
        if sha and not _SHA256_HEX.fullmatch(sha):
            raise _bad("weights_sha256", sha, '"" or 64 lowercase hex digits')
        put("norm_offset", _per_band("norm_offset", self.norm_offset, bands,
                                     lambda n, v: _real(n, v, finite=True)))
        scale = _per_band("norm_scale", self.norm_scale, bands, lambda n, v: _real(n, v, finite=True))
        for i, s in enumerate(scale):
            if s <= 0:
                raise _bad(f"norm_scale[{i}]", s, "> 0")
        put("norm_scale", scale)
        put("crs_wkt", _str("crs_wkt", self.crs_wkt))
        if self.geotransform is not None:
            put("geotransform", _per_band("geotransform", self.geotransform, 6,
                                          lambda n, v: _real(n, v, finite=True)))

        # () means "defaults for every band", so callers need not know the band count up front.
        defaults = {"band_descriptions": ("", _str), "band_metadata": ({}, _str_dict),
                    "band_scale": (None, _opt_real), "band_offset": (None, _opt_real)}
        for name, (default, check) in defaults.items():
            value = getattr(self, name)
            if isinstance(value, (tuple, list)) and len(value) == 0:
                value = tuple(dict(default) if isinstance(default, dict) else default
                              for _ in range(bands))
            put(name, _per_band(name, value, bands, check))

        put("metadata", _str_dict("metadata", self.metadata))
        options = self.codec_options
        if not isinstance(options, dict) or not all(isinstance(k, str) for k in options):
            raise _bad("codec_options", options, "a dict with string keys")
        try:
            text = json.dumps(options, allow_nan=False)
        except (TypeError, ValueError) as e:
            raise _bad("codec_options", options, f"JSON-serialisable ({e})") from None
        if len(text) > MAX_CODEC_OPTIONS_BYTES:
            raise FormatError(f"header field 'codec_options' is too large ({len(text)} bytes)")
        put("codec_options", json.loads(text))  # a deep copy in canonical JSON types
        if self.max_abs_error is not None:
            e = _real("max_abs_error", self.max_abs_error, finite=True)
            if e < 0:
                raise _bad("max_abs_error", e, ">= 0")
            put("max_abs_error", e)

    @classmethod
    def create(cls, *, norm_offset: float | Iterable[float] = 0.0,
               norm_scale: float | Iterable[float] = 1.0, **fields: Any) -> Header:
        """Build a Header from the required fields, filling everything else with defaults.

        Besides what the constructor accepts: ``norm_offset``/``norm_scale`` may be one number for
        all bands (default identity: 0 and 1), and any optional field may be ``None`` for its default.
        """
        bands = fields.get("bands")
        if isinstance(bands, numbers.Integral) and not isinstance(bands, bool) and bands > 0:
            if isinstance(norm_offset, numbers.Real):
                norm_offset = (norm_offset,) * int(bands)
            if isinstance(norm_scale, numbers.Real):
                norm_scale = (norm_scale,) * int(bands)
        optional = ("weights_sha256", "crs_wkt", "band_descriptions", "band_metadata",
                    "band_scale", "band_offset", "metadata", "codec_options", "max_abs_error")
        for name in optional:
            if fields.get(name, ...) is None:
                del fields[name]
        norm_offset = tuple(norm_offset) if isinstance(norm_offset, Iterable) else norm_offset
        norm_scale = tuple(norm_scale) if isinstance(norm_scale, Iterable) else norm_scale
        return cls(norm_offset=norm_offset, norm_scale=norm_scale, **fields)

    @property
    def n_tiles(self) -> int:
        """Number of tiles in the row-major grid covering the scene."""
        return -(-self.rows // self.tile_rows) * -(-self.cols // self.tile_cols)

    def to_dict(self) -> dict[str, Any]:
        """The JSON object stored in the file (non-finite floats as "nan"/"inf"/"-inf")."""
        d = {
            "rows": self.rows, "cols": self.cols, "bands": self.bands, "dtype": self.dtype,
            "nodata": _float_to_json(self.nodata),
            "tile_rows": self.tile_rows, "tile_cols": self.tile_cols,
            "codec": self.codec, "quality": self.quality, "weights_sha256": self.weights_sha256,
            "norm_offset": list(self.norm_offset), "norm_scale": list(self.norm_scale),
            "crs_wkt": self.crs_wkt,
            "geotransform": None if self.geotransform is None else list(self.geotransform),
            "band_descriptions": list(self.band_descriptions),
            "band_metadata": [dict(m) for m in self.band_metadata],
            "band_scale": [_float_to_json(v) for v in self.band_scale],
            "band_offset": [_float_to_json(v) for v in self.band_offset],
            "metadata": dict(self.metadata),
            "codec_options": self.codec_options,
        }
        if self.max_abs_error is not None:  # format 1.2, optional: files without it read as before
            d["max_abs_error"] = self.max_abs_error
        return d

    def to_json_bytes(self) -> bytes:
        """UTF-8 JSON, deterministic (sorted keys) so that equal headers give equal bytes."""
        try:
            text = json.dumps(self.to_dict(), allow_nan=False, ensure_ascii=False,
                              sort_keys=True, separators=(",", ":"))
            return text.encode("utf-8")
        except (ValueError, UnicodeEncodeError) as e:  # e.g. a lone surrogate in a description
            raise FormatError(f"header cannot be stored as UTF-8 JSON: {e}") from e

    @classmethod
    def from_json_bytes(cls, data: bytes) -> Header:
        """Parse and validate header JSON; anything malformed raises FormatError."""
        try:
            obj = loads_strict(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as e:
            raise FormatError(f"header is not valid UTF-8 JSON: {e}") from None
        return cls.from_dict(obj)

    def to_compact_bytes(self) -> bytes:
        """The header in the compact encoding (:mod:`engine.format.header_codec`), as files store it."""
        return encode_compact(self.to_dict())

    @classmethod
    def from_compact_bytes(cls, data: bytes) -> Header:
        """Parse and validate a compact header; anything malformed raises FormatError."""
        return cls.from_dict(decode_compact(data, MAX_HEADER_BYTES))

    @classmethod
    def from_dict(cls, obj: object) -> Header:
        """Validate the JSON object of a header (:meth:`to_dict`'s form); anything malformed raises FormatError."""
        if not isinstance(obj, dict):
            raise FormatError("header JSON is not an object")
        required = ("rows", "cols", "bands", "dtype", "nodata", "tile_rows", "tile_cols", "codec",
                    "quality", "weights_sha256", "norm_offset", "norm_scale", "crs_wkt",
                    "geotransform", "band_descriptions", "band_metadata", "band_scale",
                    "band_offset", "metadata", "codec_options")
        missing = [k for k in required if k not in obj]
        if missing:
            raise FormatError(f"header JSON lacks field(s): {', '.join(missing)}")
        # Keys not listed are ignored: a newer minor version may add fields (docs/format.md).
        fields = {k: obj[k] for k in required}
        fields["max_abs_error"] = obj.get("max_abs_error")
        fields["nodata"] = _float_from_json("nodata", obj["nodata"])
        for name in ("band_scale", "band_offset"):
            if isinstance(obj[name], list):
                fields[name] = [_float_from_json(f"{name}[{i}]", v) for i, v in enumerate(obj[name])]
        return cls(**fields)

    def __eq__(self, other: object) -> bool:
        # Compare the stored form: plain field equality would call a NaN nodata unequal to itself.
        if not isinstance(other, Header):
            return NotImplemented
        return self.to_json_bytes() == other.to_json_bytes()

    def __hash__(self) -> int:
        return hash(self.to_json_bytes())


# ---------------------------------------------------------------------------------------------
# Writing
# ---------------------------------------------------------------------------------------------

@contextmanager
def _os_errors(path: str, action: str) -> Iterator[None]:
    """Turn an OSError from our own file operations into HSICIOError naming the user's path."""
    try:
        yield
    except HSICError:
        raise
    except OSError as e:
        raise HSICIOError(f"cannot {action} {path}: {e.strerror or e}") from e


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def partial_name(target: str) -> str:
    """A temporary name beside ``target``, unique to this call: two writers of one target never share
    a temporary file (the process id lets :func:`remove_stale_partials` tell a killed writer's)."""
    return f"{target}.{os.getpid()}-{secrets.token_hex(4)}.partial"


def _process_alive(pid: int) -> bool:
    if os.name == "nt":  # os.kill(pid, 0) would terminate it there: never take a file for stale
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True  # exists, owned by another user
    return True


def remove_stale_partials(target: str) -> None:
    """Remove temporary files beside ``target`` left by writers that were killed (their process is
    gone), and the fixed-name ``<target>.partial`` of earlier versions. Best effort."""
    folder, base = os.path.split(os.path.abspath(target))
    pattern = re.compile(re.escape(base) + r"\.(\d+)-[0-9a-f]{8}\..*")
    try:
        names = os.listdir(folder)
    except OSError:
        return
    for name in names:
        m = pattern.fullmatch(name)
        if name == base + ".partial" or (m and not _process_alive(int(m.group(1)))):
            _remove_quietly(os.path.join(folder, name))


def write_hsic(path: PathLike, header: Header, tiles: Iterable[bytes], trailer: bytes = b"",
               scene: bytes | None = None) -> int:
    """Write a .hsic file atomically from ``header`` and its tile payloads in row-major tile order.

    ``trailer`` (format 1.1, optional) is stored after the last payload; the container only keeps its
    bytes (the overview section of ``engine/overviews.py``, see docs/format.md). With a trailer the
    file says minor version 1, without one it is a plain 1.0 file. ``scene`` (format 1.3, optional):
    the codec's scene side information (:meth:`engine.codecs.base.TileCodec.fit_scene`), stored once
    in the scene section between the index and the first payload; the file then says minor version 3.

    Payloads are streamed to a temporary file beside ``path`` unique to this call (:func:`partial_name`;
    one payload at a time in memory), which is renamed onto
    ``path`` only once complete and fsynced; on any exception, including one raised by ``tiles``
    (e.g. CancelledError) or KeyboardInterrupt, the partial file is removed and the exception
    propagates, so ``path`` never holds an incomplete file. Returns the size of the file written.
    """
    if not isinstance(header, Header):
        raise InputError(f"header must be a Header, got {type(header).__name__}")
    target = os.fspath(path)
    partial = partial_name(target)
    text = header.to_json_bytes()
    if len(text) > MAX_HEADER_BYTES:
        raise InputError(f"header of {len(text)} bytes exceeds the {MAX_HEADER_BYTES}-byte limit")
    # Every byte counts in the rate: a 224-band EnMAP header is ~32 KB as JSON, ~4.4 KB deflated and
    # ~1 KB compact (docs/benchmarks/header.md).
    head = header.to_compact_bytes()
    n = header.n_tiles
    if n > _U32_MAX:
        raise InputError(f"{n} tiles is more than a .hsic file can index; use larger tiles")

    if scene is not None and len(scene) > MAX_SCENE_BYTES:
        raise InputError(f"scene section of {len(scene)} bytes exceeds the {MAX_SCENE_BYTES}-byte limit")
    minor = (SCENE_MINOR if scene is not None else BOUNDED_MINOR if header.max_abs_error is not None
             else TRAILER_MINOR if trailer else FORMAT_MINOR)
    prefix = PREFIX.pack(MAGIC, FORMAT_MAJOR, minor, codec_number(header.codec), COMPACT_HEADER,
                          len(head), n)
    index_pos = len(prefix) + len(head) + _CRC.size
    section = b"" if scene is None else _CRC.pack(len(scene)) + bytes(scene) + _CRC.pack(zlib.crc32(scene))
    # payloads start after the index, its CRC and the scene section
    pos = index_pos + n * _INDEX_ENTRY.size + _CRC.size + len(section)
    index = bytearray()
    f = None
    try:
        with _os_errors(target, "write"):
            remove_stale_partials(target)
            f = open(partial, "xb")
            f.write(prefix)
            f.write(head)
            f.write(_CRC.pack(zlib.crc32(head, zlib.crc32(prefix))))
            f.write(bytes(n * _INDEX_ENTRY.size + _CRC.size))  # reserved; filled in at the end
            f.write(section)

        count = 0
        for tile in tiles:  # exceptions from the producer propagate unchanged
            if not isinstance(tile, (bytes, bytearray, memoryview)):
                raise InputError(f"tile {count} is {type(tile).__name__}, not bytes")
            if count == n:
                raise InputError(f"more than the header's {n} tiles were given")
            size = memoryview(tile).nbytes
            if size > _U32_MAX:
                raise InputError(f"tile {count} payload of {size} bytes exceeds 4 GiB")
            with _os_errors(target, "write"):
                f.write(tile)
            index += _INDEX_ENTRY.pack(pos, size, zlib.crc32(tile))
            pos += size
            count += 1
        if count != n:
            raise InputError(f"{count} tiles were given but the header needs {n}")

        with _os_errors(target, "write"):
            f.write(trailer)
            pos += len(trailer)
            f.seek(index_pos)
            f.write(index)
            f.write(_CRC.pack(zlib.crc32(index)))
            f.flush()
            os.fsync(f.fileno())  # data on disk before the rename makes it visible
            f.close()
            os.replace(partial, target)
    except BaseException:
        if f is not None:
            try:
                f.close()
            except OSError:
                pass
        _remove_quietly(partial)
        raise
    _fsync_dir(os.path.dirname(os.path.abspath(target)))
    return pos


def _fsync_dir(folder: str) -> None:
    """Best effort: persist the rename itself (POSIX; not possible on Windows)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# Reading
# ---------------------------------------------------------------------------------------------

def _inflate_header(head: bytes, where: str) -> bytes:
    """Inflate the header, never past MAX_HEADER_BYTES (a deflate bomb must not allocate gigabytes)."""
    d = zlib.decompressobj()
    try:
        text = d.decompress(head, MAX_HEADER_BYTES + 1)
    except zlib.error as e:
        raise FormatError(f"{where}: header is not valid deflate data ({e})") from None
    if len(text) > MAX_HEADER_BYTES or not d.eof or d.unused_data or d.unconsumed_tail:
        raise FormatError(f"{where}: header is corrupt or larger than {MAX_HEADER_BYTES} bytes")
    return text


class HsicReader:
    """An open, fully validated .hsic file. Use :func:`open_hsic`; a context manager.

    Everything except tile payloads is checked when opening; each payload's CRC is checked by
    :meth:`read_tile`, which is safe to call from several threads at once.
    """

    def __init__(self, path: PathLike):
        self.path: str = os.fspath(path)
        self._lock = threading.Lock()  # only for platforms without os.pread
        try:
            self._fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
        except OSError as e:
            raise HSICIOError(f"cannot open {self.path}: {e.strerror or e}") from e
        try:
            self._open()
        except BaseException:
            self.close()
            raise

    def _read(self, offset: int, size: int) -> bytes:
        """Exactly ``size`` bytes at ``offset``, or fewer if the file ends (caller decides)."""
        chunks = []
        with _os_errors(self.path, "read"):
            while size > 0:
                if hasattr(os, "pread"):
                    chunk = os.pread(self._fd, size, offset)
                else:  # Windows: no pread, so serialise seek+read
                    with self._lock:
                        os.lseek(self._fd, offset, os.SEEK_SET)
                        chunk = os.read(self._fd, size)
                if not chunk:
                    break
                chunks.append(chunk)
                offset += len(chunk)
                size -= len(chunk)
        return b"".join(chunks)

    def _open(self) -> None:
        with _os_errors(self.path, "read"):
            st = os.fstat(self._fd)
        if not stat.S_ISREG(st.st_mode):  # a FIFO or device could block forever
            raise HSICIOError(f"cannot read {self.path}: not a regular file")
        self.file_size: int = st.st_size
        where = self.path

        first = self._read(0, PREFIX.size)
        if first[:len(MAGIC)] != MAGIC:
            if len(first) < len(MAGIC) and MAGIC.startswith(first):
                raise FormatError(f"{where}: truncated .hsic file ({self.file_size} bytes)")
            raise FormatError(f"{where}: not a .hsic file (wrong magic bytes)")
        if len(first) < PREFIX.size:
            raise FormatError(f"{where}: truncated .hsic file ({self.file_size} bytes)")
        _, major, minor, number, encoding, head_len, n = PREFIX.unpack(first)
        # The version decides the rest of the layout, so it is checked before anything else.
        if major > FORMAT_MAJOR:
            raise FormatError(f"{where} was written by a newer HSIC (format {major}.{minor}); "
                              f"this version reads format {FORMAT_MAJOR}.x: upgrade HSIC")
        if major < FORMAT_MAJOR:
            raise FormatError(f"{where}: unsupported format version {major}.{minor}")

        # Sizes are checked against the real file before any allocation that depends on them.
        if head_len > MAX_HEADER_BYTES:
            raise FormatError(f"{where}: header length {head_len} exceeds {MAX_HEADER_BYTES} (corrupt)")
        index_pos = PREFIX.size + head_len + _CRC.size
        if index_pos > self.file_size:
            raise FormatError(f"{where}: truncated or corrupt (header length {head_len}, "
                              f"file is {self.file_size} bytes)")
        rest = self._read(PREFIX.size, head_len + _CRC.size)
        if len(rest) != head_len + _CRC.size:
            raise FormatError(f"{where}: truncated .hsic file (file shrank while reading)")
        head = rest[:head_len]
        (stored,) = _CRC.unpack_from(rest, head_len)
        if zlib.crc32(head, zlib.crc32(first)) != stored:
            raise FormatError(f"{where}: header CRC mismatch (corrupt file)")
        if encoding not in (JSON_HEADER, COMPACT_HEADER):
            raise FormatError(f"{where}: unknown header encoding {encoding} (corrupt file, or written by a "
                              "newer HSIC)")

        data_pos = index_pos + n * _INDEX_ENTRY.size + _CRC.size
        if data_pos > self.file_size:
            raise FormatError(f"{where}: truncated or corrupt (tile count {n}, "
                              f"file is {self.file_size} bytes)")
        header = (Header.from_compact_bytes(head) if encoding == COMPACT_HEADER
                  else Header.from_json_bytes(_inflate_header(head, where)))
        if codec_id(number) != header.codec:
            raise FormatError(f"{where}: codec number {number} ({codec_id(number)}) disagrees "
                              f"with header codec {header.codec!r}")
        if n != header.n_tiles:
            raise FormatError(f"{where}: tile count {n} does not match the header's "
                              f"{header.n_tiles} tiles")

        raw_index = self._read(index_pos, n * _INDEX_ENTRY.size + _CRC.size)
        if len(raw_index) != n * _INDEX_ENTRY.size + _CRC.size:
            raise FormatError(f"{where}: truncated .hsic file (file shrank while reading)")
        (stored,) = _CRC.unpack_from(raw_index, n * _INDEX_ENTRY.size)
        if zlib.crc32(memoryview(raw_index)[:-_CRC.size]) != stored:
            raise FormatError(f"{where}: tile index CRC mismatch (corrupt file)")

        self.scene_bytes: bytes | None = None  # format 1.3: the codec's scene side information
        if minor == SCENE_MINOR:  # the scene section is there exactly in 1.3 files (docs/format.md)
            self.scene_bytes = self._read_scene(data_pos)
            data_pos += 2 * _CRC.size + len(self.scene_bytes)

        offsets, lengths, crcs = [], [], []
        end = data_pos  # payloads must follow the index, ascending and non-overlapping
        for i, (offset, length, crc) in enumerate(_INDEX_ENTRY.iter_unpack(raw_index[:-_CRC.size])):
            if offset < end or offset + length > self.file_size:
                raise FormatError(f"{where}: tile {i} at bytes [{offset}, {offset + length}) is out "
                                  f"of place or past the end of the file (truncated or corrupt)")
            end = offset + length
            offsets.append(offset)
            lengths.append(length)
            crcs.append(crc)

        self.header: Header = header
        self.n_tiles: int = n
        self.format_version: tuple[int, int] = (major, minor)
        self.header_encoding: int = encoding  # JSON_HEADER or COMPACT_HEADER
        self.tile_lengths: tuple[int, ...] = tuple(lengths)
        # Format 1.1: bytes after the last payload are an optional trailer (its owner validates it).
        self.trailer_range: tuple[int, int] = (end, self.file_size) if minor >= TRAILER_MINOR else (end, end)
        self._offsets = tuple(offsets)
        self._crcs = tuple(crcs)

    def _read_scene(self, pos: int) -> bytes:
        """The scene section at ``pos`` (u32 length, bytes, u32 CRC32), all checked (format 1.3)."""
        where = self.path
        head = self._read(pos, _CRC.size)
        if len(head) != _CRC.size:
            raise FormatError(f"{where}: truncated .hsic file (no scene section)")
        (size,) = _CRC.unpack(head)
        if size > MAX_SCENE_BYTES or pos + size + 2 * _CRC.size > self.file_size:
            raise FormatError(f"{where}: scene section of {size} bytes is too large or past the end of "
                              "the file (truncated or corrupt)")
        data = self._read(pos + _CRC.size, size + _CRC.size)
        if len(data) != size + _CRC.size:
            raise FormatError(f"{where}: truncated .hsic file (file shrank while reading)")
        (stored,) = _CRC.unpack_from(data, size)
        if zlib.crc32(memoryview(data)[:size]) != stored:
            raise FormatError(f"{where}: scene section CRC mismatch (corrupt file)")
        return data[:size]

    def read_tile(self, i: int) -> bytes:
        """Payload of tile ``i`` (row-major), its CRC32 verified. Thread-safe."""
        if isinstance(i, bool) or not isinstance(i, numbers.Integral) or not 0 <= i < self.n_tiles:
            raise InputError(f"tile index {i!r} is out of range for {self.n_tiles} tiles")
        if self._fd < 0:
            raise InputError(f"{self.path} is closed")
        i = int(i)
        data = self._read(self._offsets[i], self.tile_lengths[i])
        if len(data) != self.tile_lengths[i]:
            raise FormatError(f"{self.path}: tile {i} is truncated (file shrank after opening)")
        if zlib.crc32(data) != self._crcs[i]:
            raise FormatError(f"{self.path}: tile {i} CRC mismatch (corrupt file)")
        return data

    def read_trailer(self, offset: int, size: int) -> bytes:
        """``size`` bytes at ``offset`` from the start of the trailer (format 1.1); FormatError if outside."""
        start, end = self.trailer_range
        if offset < 0 or size < 0 or start + offset + size > end:
            raise FormatError(f"{self.path}: trailer bytes [{offset}, {offset + size}) lie outside its "
                              f"{end - start} bytes (corrupt file)")
        if self._fd < 0:
            raise InputError(f"{self.path} is closed")
        data = self._read(start + offset, size)
        if len(data) != size:
            raise FormatError(f"{self.path}: trailer is truncated (file shrank after opening)")
        return data

    def close(self) -> None:
        """Release the file; further read_tile calls raise. Closing twice is harmless."""
        fd, self._fd = getattr(self, "_fd", -1), -1
        if fd >= 0:
            os.close(fd)

    def __enter__(self) -> HsicReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"HsicReader({self.path!r}, {self.n_tiles} tiles)" if hasattr(self, "n_tiles") \
            else f"HsicReader({self.path!r})"


def open_hsic(path: PathLike) -> HsicReader:
    """Open and validate a .hsic file (HSICIOError if unreadable, FormatError if not valid)."""
    return HsicReader(path)
