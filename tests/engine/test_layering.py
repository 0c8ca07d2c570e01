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


def _engine_imports() -> dict[str, set[str]]:
    """Module -> the engine modules it imports, at top level or inside functions (TYPE_CHECKING too)."""
    root = ENGINE.parent
    modules = {".".join(p.relative_to(root).with_suffix("").parts).removesuffix(".__init__"): p
               for p in ENGINE.rglob("*.py")}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        package = name if path.name == "__init__.py" else name.rpartition(".")[0]
        deps = set()
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                targets = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    base = ".".join(package.split(".")[:len(package.split(".")) - node.level + 1] + [base]).strip(".")
                # "from engine.format import overview" imports the submodule engine.format.overview
                targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in modules else base for a in node.names]
            else:
                continue
            for t in targets:
                # a name inside a module counts as that module; a package as its __init__
                while t and t not in modules:
                    t = t.rpartition(".")[0]
                if t and t != name:
                    deps.add(t)
        graph[name] = deps
    return graph


def test_engine_has_no_import_loops():
    graph = _engine_imports()
    loops, state = [], {}

    def visit(m, stack):
        state[m] = "open"
        for d in sorted(graph[m]):
            if state.get(d) == "open":
                loops.append(" -> ".join(stack[stack.index(d):] + [d]))
            elif d not in state:
                visit(d, stack + [d])
        state[m] = "done"

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not loops, loops


def test_no_private_names_imported_across_files():
    bad = []
    for path in ENGINE.parent.joinpath("engine").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("engine"):
                bad += [f"{path.name}: from {node.module} import {a.name}" for a in node.names
                        if a.name.startswith("_") and not a.name.startswith("__")]
    assert not bad, bad


def test_only_engine_format_packs_format_bytes():
    """struct packs and unpacks the file's bytes in engine/format/ only (catching struct.error is fine)."""
    bad = []
    for path in ENGINE.rglob("*.py"):
        if path.parent.name == "format":
            continue
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id == "struct"
                    and node.attr != "error"):
                bad.append(f"{path.relative_to(ENGINE)}:{node.lineno} struct.{node.attr}")
            elif isinstance(node, ast.ImportFrom) and node.module == "struct":
                bad.append(f"{path.relative_to(ENGINE)}:{node.lineno} from struct import ...")
    assert not bad, bad
