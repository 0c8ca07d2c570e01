#!/usr/bin/env python3
"""Build the QGIS plugin zip (``make plugin``): dist/hsic-plugin.zip, installable through QGIS's
Plugins > Manage and Install Plugins > Install from ZIP.

The zip holds one folder, ``hsic/``, with metadata.txt, the three packages (engine, hsi_gdal without its
command-line tools, qgis_plugin) and a small ``__init__.py`` that puts that folder on Python's path (the
sidecar's pixel function must be importable as ``hsi_gdal.pixelfn``, so the packages travel with the
plugin rather than being looked for in another environment) and, when HSIC_SITE_PACKAGES is set, the
site-packages folders it lists (an environment with torch, compressai and numba). Standard library only.

Weights: only those of the codecs the plugin uses by default (``PLUGIN_CODECS``): the default codec's
context model and rANS tables (klt, 7 KB) and the default training codec's networks (cae1d, 0.9 MB),
which hsic:train fine-tunes. The other codecs' weights are 54 MB; ``--all-weights`` adds them (and their
training records). The plugin's help marks the codecs whose weights are not installed.
"""

from __future__ import annotations

import argparse
import os
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
PACKAGES = ("engine", "hsi_gdal", "qgis_plugin")
# The sample scene is for the demo, the tools (CLI, benchmarks) for the command line: neither for the plugin.
SKIP_DIRS = {"__pycache__", "hsi_gdal/sample", "hsi_gdal/tools"}
SUFFIXES = {".py", ".pt", ".json", ".npz"}  # .npz: the klt codec's context model and rANS tables
WEIGHTS = "engine/weights"
# engine.registry's DEFAULT_CODEC and DEFAULT_TRAIN_CODEC (this script imports nothing from the engine,
# which needs numpy; tests/qgis_plugin/test_plugin_zip.py checks they agree).
PLUGIN_CODECS = ("klt", "cae1d")

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


def wanted(rel: str, all_weights: bool) -> bool:
    """Whether the file at ``rel`` (relative to the repository) goes into the zip."""
    if Path(rel).suffix not in SUFFIXES:
        return False
    if not rel.startswith(WEIGHTS + "/") or all_weights:
        return True
    name = rel[len(WEIGHTS) + 1:]
    if name.endswith(".npz"):
        return True  # klt's tables (klt_context.npz, klt_laplace_tables.npz)
    # <codec>-q<N>.pt of the plugin's codecs; training records (.json) are not read when coding.
    return name.endswith(".pt") and name.rsplit("-q", 1)[0] in PLUGIN_CODECS


def files(all_weights: bool = False) -> list[tuple[Path, str]]:
    out = [(REPO / "metadata.txt", "hsic/metadata.txt")]
    for pkg in PACKAGES:
        for root, dirs, names in os.walk(REPO / pkg):
            here = Path(root).relative_to(REPO).as_posix()
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and f"{here}/{d}" not in SKIP_DIRS)
            for name in sorted(names):
                rel = f"{here}/{name}"
                if wanted(rel, all_weights):
                    out.append((REPO / rel, "hsic/" + rel))
    return out


def build(dst: Path, all_weights: bool = False) -> Path:
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    with zipfile.ZipFile(tmp, "w", zipfile.ZIP_DEFLATED) as z:
        for path, arc in files(all_weights):
            z.write(path, arc)
        z.writestr("hsic/__init__.py", SHIM)
    os.replace(tmp, dst)  # never a half-written zip at the destination
    return dst


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(REPO / "dist" / "hsic-plugin.zip"), help="zip to write")
    p.add_argument("--all-weights", action="store_true",
                   help=f"the weights of every codec (about 55 MB), not only {' and '.join(PLUGIN_CODECS)}'s")
    args = p.parse_args(argv)
    out = build(Path(args.out), args.all_weights)
    print(f"{out}: {out.stat().st_size} bytes; install it in QGIS with Plugins > Manage and Install "
          "Plugins > Install from ZIP")
    return 0


if __name__ == "__main__":
    sys.exit(main())
