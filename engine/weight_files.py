"""Where the installed weights files live, how they are named, and the archive of retired ones.

A codec's weights for quality N are ``engine/weights/<id>-q<N>.pt`` (unless its CodecInfo names
others). Every .hsic file records the SHA-256 of the weights it was written with. When weights are
retrained, the old file moves to ``engine/weights/archive/<id>-q<N>-<first 12 hex of its sha256>.pt``,
so files written with it still decode: :func:`weights_by_digest` finds the file for an (id, quality,
digest), the installed one first, then the archive.
"""

from __future__ import annotations

import hashlib
import os
import stat
from pathlib import Path

from engine.errors import CodecError

WEIGHTS_DIR = Path(__file__).resolve().parent / "weights"
ARCHIVE = "archive"  # sub-folder of WEIGHTS_DIR holding retired weights
# Far above any codec's weights (the largest are a few MB): a bound on what is hashed and loaded.
MAX_WEIGHTS_BYTES = 1 << 30


def check_weights_file(path: Path) -> Path:
    """``path`` if it is a readable regular file of 1 byte to MAX_WEIGHTS_BYTES, else CodecError.

    Checked before a file is hashed or loaded: a path can come from a crafted header, and a device,
    FIFO, /proc file (size 0) or huge file must not hang or stall the decoder.
    """
    try:
        st = os.stat(path)
    except (OSError, ValueError) as e:  # ValueError: a NUL in the path
        raise CodecError(f"weights file {str(path)!r}: {getattr(e, 'strerror', None) or e}") from None
    if not stat.S_ISREG(st.st_mode) or not 0 < st.st_size <= MAX_WEIGHTS_BYTES:
        raise CodecError(f"weights file {str(path)!r} is not a regular file of 1 byte to {MAX_WEIGHTS_BYTES >> 20} MiB")
    if not os.access(path, os.R_OK):
        raise CodecError(f"weights file {path} is not readable")
    return Path(path)


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def default_name(codec_id: str, quality: int) -> str:
    """The weights file name of a codec and quality unless the codec names another: ``<id>-q<N>.pt``."""
    return f"{codec_id}-q{quality}.pt"


def archive_path(name: str, digest: str) -> Path:
    """Where the retired weights file ``name`` (e.g. ``cae1d-q2.pt``) with SHA-256 ``digest`` is kept."""
    stem = name[:-3] if name.endswith(".pt") else name
    return WEIGHTS_DIR / ARCHIVE / f"{stem}-{digest[:12]}.pt"


def installed_path(name: str) -> Path:
    """Where the installed weights file ``name`` is."""
    return WEIGHTS_DIR / name


def weights_by_digest(name: str, digest: str) -> Path | None:
    """The installed file ``name`` if its SHA-256 is ``digest``, else the archived one of that digest,
    else None."""
    for path in (installed_path(name), archive_path(name, digest)):
        if path.is_file() and file_sha256(path) == digest:
            return path
    return None
