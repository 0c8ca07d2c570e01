#!/usr/bin/env python3
"""Build the QGIS plugin zip (``make plugin``): dist/hsic-plugin.zip, installable through QGIS's
Plugins > Manage and Install Plugins > Install from ZIP.

The zip holds one folder, ``hsic/``, with metadata.txt, the three packages (engine with its weights,
hsi_gdal, qgis_plugin) and a small ``__init__.py`` that puts that folder on Python's path (the sidecar's
pixel function must be importable as ``hsi_gdal.pixelfn``) and, when HSIC_SITE_PACKAGES is set, the
site-packages folders it lists (an environment with torch, compressai and numba). Standard library only.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "hsi_gdal", "qgis_plugin")
SKIP_DIRS = {"__pycache__", "sample"}  # the sample scene is for the demo, not the plugin
SUFFIXES = {".py", ".pt", ".json", ".npz"}  # .npz: the klt codec's context model and rANS tables

SHIM = '''\
"""HSIC QGIS plugin (built by scripts/build_plugin.py)."""
import os
import site
import sys

_here = os.path.dirname(os.path.abspath(__file__))
# An environment with torch, compressai and numba, if QGIS's own Python lacks them. Put first, as in
# that environment itself: its packages must win over older system copies (torch needs its own sympy).
for _p in reversed([p for p in os.environ.get("HSIC_SITE_PACKAGES", "").split(os.pathsep) if p]):
    _before = list(sys.path)
    site.addsitedir(_p)
    sys.path[:] = [p for p in sys.path if p not in _before] + _before
# First on the path: these packages, not another copy of HSIC that the environment may also hold.
if _here not in sys.path:
    sys.path.insert(0, _here)

from qgis_plugin import classFactory  # noqa: E402,F401
'''


def files() -> list[tuple[Path, str]]:
    out = [(REPO / "metadata.txt", "hsic/metadata.txt")]
    for pkg in PACKAGES:
        for root, dirs, names in os.walk(REPO / pkg):
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS)
            for name in sorted(names):
                path = Path(root) / name
                if path.suffix in SUFFIXES:
                    out.append((path, "hsic/" + path.relative_to(REPO).as_posix()))
    return out


def build(dst: Path) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arc in files():
            z.write(path, arc)
        z.writestr("hsic/__init__.py", SHIM)
    os.replace(tmp, dst)  # never a half-written zip at the destination
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "dist" / "hsic-plugin.zip"), help="zip to write")
    args = p.parse_args(argv)
    out = build(Path(args.out))
    print(f"{out}: {out.stat().st_size} bytes; install it in QGIS with Plugins > Manage and Install "
          "Plugins > Install from ZIP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
