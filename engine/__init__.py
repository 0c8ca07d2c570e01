"""HSIC's engine: codecs, the container, the pipeline (no GDAL, no Qt)."""

import os
import sys
import tempfile


def _numba_cache_dir() -> None:
    # Numba caches compiled kernels beside their sources, else in the user's cache folder; where neither can
    # be written (a read-only install and home), every ``cache=True`` kernel raises at import. Then cache in
    # the temporary folder instead (each process compiles once there, never fails).
    if os.environ.get("NUMBA_CACHE_DIR") or os.access(os.path.dirname(__file__), os.W_OK):
        return
    user = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    probe = user
    while not os.path.exists(probe) and os.path.dirname(probe) != probe:
        probe = os.path.dirname(probe)
    if os.access(probe, os.W_OK):
        return
    path = os.path.join(tempfile.gettempdir(), f"hsic-numba-{os.getuid() if hasattr(os, 'getuid') else 0}")
    os.environ["NUMBA_CACHE_DIR"] = path
    if "numba" in sys.modules:  # already imported (by another package): set its configuration too
        sys.modules["numba"].config.CACHE_DIR = path


_numba_cache_dir()
