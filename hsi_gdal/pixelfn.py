"""GDAL VRT Python pixel function that decodes a .hsic file through the engine.

This is the only module GDAL is allowed to run from a sidecar (GDAL_VRT_PYTHON_TRUSTED_MODULES), so it
stays small: it maps a read request to a window of the shared :class:`SceneDecoder`, whose tile cache
serves all bands (GDAL calls the function once per band per request).
"""

from __future__ import annotations

import os
import threading

_decoders: dict = {}
_lock = threading.Lock()


def decoder_for(path: str):
    """The process-wide decoder of ``path``; re-opened when the file changes on disk."""
    from engine.pipeline import SceneDecoder

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    with _lock:
        dec = _decoders.get(key)
        if dec is None:
            for old in [k for k in _decoders if k[0] == key[0]]:
                _decoders.pop(old).close()
            dec = _decoders[key] = SceneDecoder(path, device=os.environ.get("HSIC_DEVICE", "auto"))
        return dec


def decode(in_ar, out_ar, xoff, yoff, xsize, ysize, raster_xsize, raster_ysize, buf_radius, gt,
           path=None, band=None, **kwargs):
    """Fill ``out_ar`` (ysize, xsize) with band ``band`` (1-based) of the window at (xoff, yoff)."""
    if isinstance(path, bytes):  # GDAL hands PixelFunctionArguments over as bytes
        path = os.fsdecode(path)
    window = decoder_for(path).read(yoff, xoff, ysize, xsize, bands=[int(band) - 1])
    out_ar[:] = window[0]
