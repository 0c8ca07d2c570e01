"""The layers above the engine: qgis_plugin uses only hsi_gdal's public API (plus the engine's registry
and errors), hsi_gdal's API never imports its tools, one module imports osgeo, no private names cross
files, and no import loops. Imports are read with ast, those inside functions included."""

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("hsi_gdal", "qgis_plugin")
GDAL_MODULE = "hsi_gdal.gdal_env"
PLUGIN_ENGINE_MODULES = {"engine.registry", "engine.errors"}


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(*packages: str) -> dict[str, Path]:
    return {module_name(p): p for pkg in packages for p in sorted((ROOT / pkg).rglob("*.py"))}


def imports(path: Path) -> list[tuple[str, list[str], int]]:
    """(module, names imported from it, line) for every import in the file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(a.name, [], node.lineno) for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, f"{path}:{node.lineno}: relative import"
            out.append((node.module, [a.name for a in node.names], node.lineno))
    return out


def public_api() -> set[str]:
    tree = ast.parse((ROOT / "hsi_gdal" / "__init__.py").read_text())
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", "") == "__all__" for t in node.targets):
            return set(ast.literal_eval(node.value))
    raise AssertionError("hsi_gdal/__init__.py has no __all__")


def test_public_api_is_declared_and_importable():
    import hsi_gdal

    assert set(hsi_gdal.__all__) == public_api()
    missing = [name for name in hsi_gdal.__all__ if not hasattr(hsi_gdal, name)]
    assert not missing


def test_plugin_imports_only_the_public_api_and_the_engine_registry_and_errors():
    api = public_api()
    bad = []
    for name, path in modules("qgis_plugin").items():
        for module, names, line in imports(path):
            top = module.split(".")[0]
            where = f"{name}:{line}: {module}"
            if top == "hsi_gdal":
                if module != "hsi_gdal" or not set(names) <= api:
                    bad.append(f"{where} {names} (only `import hsi_gdal` and names in hsi_gdal.__all__)")
            elif top == "engine":
                if module not in PLUGIN_ENGINE_MODULES:
                    bad.append(f"{where} (only {sorted(PLUGIN_ENGINE_MODULES)})")
            elif top not in ("qgis", "qgis_plugin") and top not in sys.stdlib_module_names:
                bad.append(f"{where} (heavy or foreign: go through hsi_gdal)")
    assert not bad, "\n".join(bad)


def test_hsi_gdal_api_never_imports_its_tools():
    bad = [f"{name}:{line}: {module}" for name, path in modules("hsi_gdal").items()
           if not name.startswith("hsi_gdal.tools")
           for module, names, line in imports(path)
           if module.startswith("hsi_gdal.tools") or (module == "hsi_gdal" and "tools" in names)]
    assert not bad, "\n".join(bad)


@pytest.mark.parametrize("package", PACKAGES)
def test_only_one_module_imports_osgeo(package):
    bad = [f"{name}:{line}: {module}" for name, path in modules(package).items() if name != GDAL_MODULE
           for module, _, line in imports(path) if module.split(".")[0] == "osgeo"]
    assert not bad, f"take gdal from {GDAL_MODULE}:\n" + "\n".join(bad)


def test_no_private_names_cross_files():
    bad = [f"{name}:{line}: from {module} import {names}" for name, path in modules(*PACKAGES).items()
           for module, names, line in imports(path) if module.split(".")[0] in (*PACKAGES, "engine")
           and any(p.startswith("_") for p in module.split(".") + names)]
    assert not bad, "\n".join(bad)


def import_graph(*packages: str) -> dict[str, set[str]]:
    """Edges between the modules of ``packages``; ``from pkg import sub`` counts as importing pkg.sub."""
    known = modules(*packages)
    graph = {}
    for name, path in known.items():
        edges = set()
        for module, names, _ in imports(path):
            if module.split(".")[0] not in packages:
                continue
            subs = [f"{module}.{n}" for n in names if f"{module}.{n}" in known]
            edges.update(subs or [module])
        graph[name] = edges - {name}
    return graph


def test_no_import_loops():
    graph = import_graph(*PACKAGES)
    loops, state = [], {}

    def visit(node, stack):
        state[node] = "open"
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == "open":
                loops.append(" -> ".join(stack[stack.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, stack + [nxt])
        state[node] = "done"

    for node in sorted(graph):
        if node not in state:
            visit(node, [node])
    assert not loops, "\n".join(loops)


def test_the_checks_see_a_loop_and_a_private_import(tmp_path, monkeypatch):
    # The walkers themselves: a two-module loop and a private import in a throw-away package.
    pkg = tmp_path / "hsi_gdal"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "a.py").write_text("def f():\n    from hsi_gdal.b import _g\n")
    (pkg / "b.py").write_text("from hsi_gdal import a\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert import_graph("hsi_gdal") == {"hsi_gdal": set(), "hsi_gdal.a": {"hsi_gdal.b"},
                                        "hsi_gdal.b": {"hsi_gdal.a"}}
    assert ("hsi_gdal.b", ["_g"], 2) in imports(pkg / "a.py")
