"""engine/ knows nothing of GDAL or QGIS, and listing codecs does not pull in torch."""

import ast
import subprocess
import sys
from pathlib import Path

ENGINE = Path(__file__).resolve().parents[2] / "engine"


def test_engine_imports_no_gdal_or_qgis():
    bad = []
    for path in ENGINE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                names = [node.module or ""]
            else:
                continue
            bad += [f"{path.name}: {n}" for n in names if n.split(".")[0] in ("osgeo", "qgis", "rasterio")]
    assert not bad


def test_listing_codecs_is_cheap():
    code = ("import sys; from engine.registry import list_codecs; list_codecs(); "
            "print(any(m.split('.')[0] in ('torch', 'compressai') for m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ENGINE.parent)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"
