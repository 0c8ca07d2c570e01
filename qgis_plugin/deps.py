"""Which Python packages HSIC needs in QGIS's Python, and one message that says how to get them.

QGIS ships GDAL and numpy but not the ML stack. The plugin must still load without it: the provider
and its algorithms appear, and every algorithm answers with this message instead of a traceback.
"""

from __future__ import annotations

import importlib.util
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


def message(names: list[str]) -> str:
    pip = " ".join(REQUIRED[n] for n in names)
    return (f"HSIC needs the Python package(s) {', '.join(names)}, which QGIS's Python cannot find. "
            f"Install them with: {sys.executable if 'python' in sys.executable else 'python3'} -m pip install "
            f"{pip} (or start QGIS with HSIC_SITE_PACKAGES=<site-packages of an environment that has them>).")


def require() -> None:
    """Raise QgsProcessingException with :func:`message` if anything is missing."""
    names = missing()
    if names:
        from qgis.core import QgsProcessingException

        raise QgsProcessingException(message(names))
