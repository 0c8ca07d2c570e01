"""The triton guard (qgis_plugin/llvm_guard.py): the QGIS desktop crash it prevents, reproduced without
QGIS by loading the system's LLVM into the global symbol scope as an OpenGL driver does."""

import glob
import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import pytest

from qgis_plugin import llvm_guard

REPO = Path(__file__).resolve().parents[2]
SYSTEM_LLVM = sorted(glob.glob("/usr/lib/*-linux-gnu/libLLVM-*.so.1") + glob.glob("/usr/lib*/libLLVM-*.so"))


def _import_with_llvm_loaded(guard: bool) -> subprocess.CompletedProcess:
    code = (
        "import ctypes, os, sys\n"
        f"ctypes.CDLL({SYSTEM_LLVM[0]!r}, mode=os.RTLD_NOW | ctypes.RTLD_GLOBAL)\n"
        + ("from qgis_plugin import llvm_guard; llvm_guard.install()\n" if guard else "")
        + "import compressai\n"  # torchvision -> torch._dynamo -> triton, as hsic:open does
        "print('imported; triton:', sys.modules.get('triton'))\n"
    )
    env = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=180)


@pytest.mark.skipif(not SYSTEM_LLVM, reason="no system libLLVM to load (Mesa's OpenGL drivers bring it)")
@pytest.mark.skipif(importlib.util.find_spec("triton") is None, reason="triton is not installed: nothing clashes")
def test_torch_stack_imports_next_to_a_system_llvm_with_the_guard():
    guarded = _import_with_llvm_loaded(guard=True)
    assert guarded.returncode == 0, guarded.stderr[-3000:]
    assert "imported; triton: None" in guarded.stdout
    # Without the guard the same import dies in libtriton's static constructors (the desktop crash).
    # Should a later torch or triton stop clashing, this says so rather than keep a needless guard silently.
    bare = _import_with_llvm_loaded(guard=False)
    assert bare.returncode != 0, "triton no longer crashes next to a system LLVM: llvm_guard may be dropped"


def test_guard_answers_only_for_triton_and_only_when_another_llvm_is_loaded(monkeypatch):
    guard = llvm_guard.TritonGuard()
    monkeypatch.setattr(llvm_guard, "foreign_llvm_loaded", lambda: False)
    assert guard.find_spec("triton") is None  # no clash: the ordinary finders decide
    monkeypatch.setattr(llvm_guard, "foreign_llvm_loaded", lambda: True)
    assert guard.find_spec("numpy") is None
    had, before = "triton" in sys.modules, sys.modules.get("triton")
    try:
        with pytest.raises(ModuleNotFoundError, match="clash"):
            guard.find_spec("triton")
        assert sys.modules["triton"] is None  # later `import triton` / find_spec see it as absent
        assert importlib.util.find_spec("triton") is None
    finally:
        if had:
            sys.modules["triton"] = before
        else:
            sys.modules.pop("triton", None)


def test_install_is_idempotent(monkeypatch):
    monkeypatch.setattr(sys, "meta_path", [f for f in sys.meta_path if not isinstance(f, llvm_guard.TritonGuard)])
    monkeypatch.delitem(sys.modules, "triton", raising=False)
    llvm_guard.install()
    llvm_guard.install()
    assert isinstance(sys.meta_path[0], llvm_guard.TritonGuard)
    assert sum(isinstance(f, llvm_guard.TritonGuard) for f in sys.meta_path) == 1
