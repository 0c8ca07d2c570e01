"""Which Python packages HSIC needs in QGIS's Python, and one message that says how to get them.

QGIS ships GDAL and numpy but not the ML stack. The plugin must still load without it: the provider
and its algorithms appear, and every algorithm answers with this message instead of a traceback.
"""

from __future__ import annotations

import importlib.util
import os
import sys

# Import name -> pip name. compressai needs torchvision; metrics need numba.
REQUIRED = {"torch": "torch", "torchvision": "torchvision", "compressai": "compressai", "numba": "numba"}


def _available(name: str) -> bool:
    if name in sys.modules:  # None there means "known to be absent" (and lets tests simulate that)
        return sys.modules[name] is not None
    return importlib.util.find_spec(name) is not None


def missing() -> list[str]:
    """Import names of the required packages QGIS's Python cannot find."""
    return [name for name in REQUIRED if not _available(name)]


VENV = "~/.local/share/hsic/venv"


def qgis_python() -> str:
    """The interpreter QGIS embeds, as a command: inside QGIS ``sys.executable`` is the qgis binary, so
    the path is built from the running Python's prefix and version (``/usr/bin/python3.11`` on Debian)."""
    if "python" in os.path.basename(sys.executable):
        return sys.executable
    return os.path.join(sys.base_prefix, "bin", f"python{sys.version_info.major}.{sys.version_info.minor}")


def message(names: list[str]) -> str:
    """One line: what is missing and commands that work with QGIS's own Python, on Debian 12 too (its
    system Python refuses pip: the packages go into a venv that sees QGIS's, named by HSIC_SITE_PACKAGES)."""
    pip = " ".join(REQUIRED[n] for n in names)
    py = qgis_python()
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    return (f"HSIC needs the Python package(s) {', '.join(names)}, which QGIS's Python ({py}) cannot find. "
            f"Install them in a venv that sees QGIS's packages and start QGIS with it: "
            f"{py} -m venv --system-site-packages {VENV} && {VENV}/bin/python -m pip install {pip} "
            f"'numpy<1.25' && HSIC_SITE_PACKAGES={VENV}/lib/{version}/site-packages qgis")


def require() -> None:
    """Raise QgsProcessingException with :func:`message` if anything is missing."""
    names = missing()
    if names:
        from qgis.core import QgsProcessingException

        raise QgsProcessingException(message(names))
