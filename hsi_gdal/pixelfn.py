"""GDAL VRT Python pixel function that decodes a .hsic file through the engine.

This is the only module GDAL is allowed to run from a sidecar (GDAL_VRT_PYTHON_TRUSTED_MODULES), so it
stays small: it maps a read request to a window of the shared :class:`SceneDecoder`, whose tile cache
serves all bands (GDAL calls the function once per band per request), or of a stored overview level.
"""

from __future__ import annotations

import os
import threading

_decoders: dict = {}
_levels: dict = {}
_resolved: dict = {}
_lock = threading.Lock()


def decoder_for(path: str):
    """The process-wide decoder of ``path``; re-opened when the file changes on disk."""
    return _decoder(path)[0]


def _decoder(path: str):
    from engine.pipeline import SceneDecoder

    st = os.stat(path)
    key = (os.path.realpath(path), st.st_mtime_ns, st.st_size)
    with _lock:
        dec = _decoders.get(key)
        if dec is None:
            for old in [k for k in _decoders if k[0] == key[0]]:
                _decoders.pop(old).close()
                for lk in [lk for lk in _levels if lk[0] == old]:
                    del _levels[lk]
            dec = _decoders[key] = SceneDecoder(path, device=os.environ.get("HSIC_DEVICE", "auto"))
        return dec, key


def level_decoder_for(path: str, factor: int):
    """The process-wide decoder of the stored overview level ``factor`` of ``path``."""
    from engine.overviews import LevelDecoder, read_levels

    dec, key = _decoder(path)
    with _lock:
        lk = (key, factor)
        lev = _levels.get(lk)
        if lev is None:
            levels = read_levels(dec.reader)
            if factor not in levels:
                raise ValueError(f"{path} has no overview of factor {factor}")
            lev = _levels[lk] = LevelDecoder(levels[factor], dec.codec)
        return lev


def _text(v):
    return os.fsdecode(v) if isinstance(v, bytes) else v  # GDAL hands PixelFunctionArguments over as bytes


def locate(path=None, file=None, vrt=None, key=None) -> str:
    """The .hsic file a sidecar means: beside the open sidecar if it was moved, else ``path``."""
    if file is None:  # sidecars written before relative lookup: the absolute path only
        return path
    args = (path, file, vrt, key)
    found = _resolved.get(args)
    if found is None or not os.path.isfile(found):
        from hsi_gdal.locate import resolve

        found = _resolved[args] = resolve(file, vrt, path, key)
    return found


def decode(in_ar, out_ar, xoff, yoff, xsize, ysize, raster_xsize, raster_ysize, buf_radius, gt,
           path=None, band=None, file=None, vrt=None, key=None, level=None, **kwargs):
    """Fill ``out_ar`` with band ``band`` (1-based) of the window (xoff, yoff, xsize, ysize).

    ``out_ar`` has the request's buffer size, which differs from the window's whenever the view is not
    at 1:1: it is then sampled by nearest neighbour as GDAL would (hsi_gdal/resample.py).
    ``level`` (an overview factor) reads that stored level instead of full resolution.
    """
    from hsi_gdal.resample import read_resampled

    path = locate(_text(path), _text(file), _text(vrt), _text(key))
    dec = decoder_for(path) if level is None else level_decoder_for(path, int(level))
    buf_ysize, buf_xsize = out_ar.shape
    out_ar[:] = read_resampled(dec.read, dec.grid, dec.header.dtype, xoff, yoff, xsize, ysize,
                               buf_xsize, buf_ysize, [int(band) - 1])[0]
