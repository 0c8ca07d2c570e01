"""Finding a sidecar's .hsic file from inside GDAL's Python pixel function.

GDAL (3.6 and later) does not tell a pixel function which VRT it belongs to, and a path stored in the
VRT breaks when the files move. What the function can reach is the process's libgdal, and libgdal
keeps the list of open datasets (``GDALGetOpenDatasets``): the sidecar being read is among them, under
the path it was opened with. So the sidecar stores its own file name, the .hsic file name and a key
(the header CRC of the .hsic); the function looks for open datasets named like the sidecar, tries the
.hsic file beside each, and accepts the one whose key matches. The absolute path recorded at
compress time is the last resort (sidecars written before this scheme have only that).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os

from engine.format.container import PREFIX as _PREFIX  # the container's fixed prefix

_lib = None


def header_key(path: str) -> str | None:
    """Hex CRC32 of the .hsic header (as stored in the file), or None if ``path`` is not readable."""
    try:
        with open(path, "rb") as f:
            prefix = f.read(_PREFIX.size)
            if len(prefix) < _PREFIX.size:
                return None
            head_len = _PREFIX.unpack(prefix)[5]
            f.seek(_PREFIX.size + head_len)
            crc = f.read(4)
    except OSError:
        return None
    return crc.hex() if len(crc) == 4 else None


def _gdal_lib():
    global _lib
    if _lib is None:
        # The library already loaded in this process (gdalinfo, QGIS, or Python's osgeo): dlopen returns it.
        name = ctypes.util.find_library("gdal") or "libgdal.so"
        lib = ctypes.CDLL(name)
        lib.GDALGetOpenDatasets.argtypes = [ctypes.POINTER(ctypes.POINTER(ctypes.c_void_p)),
                                            ctypes.POINTER(ctypes.c_int)]
        lib.GDALGetOpenDatasets.restype = None
        lib.GDALGetDescription.argtypes = [ctypes.c_void_p]
        lib.GDALGetDescription.restype = ctypes.c_char_p
        _lib = lib
    return _lib


def open_dataset_names() -> list[str]:
    """Descriptions (usually the paths they were opened with) of the datasets open in this process."""
    try:
        lib = _gdal_lib()
    except (OSError, AttributeError):
        return []
    arr, n = ctypes.POINTER(ctypes.c_void_p)(), ctypes.c_int()
    lib.GDALGetOpenDatasets(ctypes.byref(arr), ctypes.byref(n))
    names = []
    for i in range(n.value):
        d = lib.GDALGetDescription(arr[i])
        if d and not d.startswith(b"<"):  # inline VRT XML (overview datasets) has no folder
            names.append(os.fsdecode(d))
    return names


def resolve(file: str, vrt: str, path: str | None, key: str | None) -> str:
    """Path of the .hsic file named ``file`` that sits beside an open sidecar named ``vrt``.

    Only a file whose header key matches is taken, so a same-named .hsic elsewhere is never mistaken.
    """
    names = open_dataset_names()
    # Sidecars of the recorded name first; then the folder of any open dataset (a renamed sidecar).
    names.sort(key=lambda n: os.path.basename(n) != vrt)
    candidates = [os.path.join(os.path.dirname(n), file) for n in names]
    if path:
        candidates.append(path)
    seen = set()
    for c in candidates:
        if c in seen:
            continue
        seen.add(c)
        if os.path.isfile(c) and (key is None or header_key(c) == key):
            return c
    raise FileNotFoundError(f"{file}: not found beside {vrt} (keep the .hsic file and its sidecar in one "
                            f"folder), nor at {path}")
