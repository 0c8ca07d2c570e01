"""Keep triton out of a QGIS process whose global symbol scope already holds another LLVM.

Why (a desktop crash): torchvision imports ``torch._dynamo``, which imports triton when it
is installed (torch's wheels bring it). ``libtriton.so`` contains its own LLVM and exports those symbols
without a version. The QGIS desktop has usually loaded an OpenGL driver by then (Mesa's swrast/llvmpipe
under Xvfb, radeonsi on AMD...), which brings the system's ``libLLVM-N.so`` into the global scope, so
the dynamic linker binds libtriton's own LLVM calls to that other LLVM and libtriton's static
constructors crash the whole application (SIGSEGV in ``llvm::DebugCounter`` while dlopen runs them).
Headless QGIS (qgis_process, pytest-qgis offscreen) loads no OpenGL driver and is not affected.

HSIC never needs triton (no ``torch.compile``), and torch runs without it: it only asks whether the
package exists. So, in that one situation, triton is made to look absent.
"""

from __future__ import annotations

import ctypes
import sys

# Exported by every LLVM shared library (LLVM's C API). triton's own copy never answers this lookup:
# Python loads extension modules with RTLD_LOCAL, outside the global scope.
_LLVM_SYMBOL = "LLVMContextCreate"


def foreign_llvm_loaded() -> bool:
    """Whether a shared LLVM is in this process's global symbol scope (dlsym on the main program)."""
    try:
        return hasattr(ctypes.CDLL(None), _LLVM_SYMBOL)
    except OSError:
        return False


class TritonGuard:
    """Meta-path finder consulted before the others: answers ``triton`` only when the clash is present.

    The check runs when triton is first looked for, not at install time: the OpenGL driver may be
    loaded after the plugin (the first map canvas draw, a 3D view).
    """

    def find_spec(self, name, path=None, target=None):
        if name != "triton" or not foreign_llvm_loaded():
            return None  # let the ordinary finders answer
        sys.modules["triton"] = None  # from now on: absent, for `import` and importlib.util.find_spec alike
        raise ModuleNotFoundError("triton is not loaded in this QGIS: its LLVM would clash with the LLVM "
                                  "of the OpenGL driver already loaded (HSIC does not need triton)",
                                  name="triton")


def install() -> None:
    """Put the guard first on ``sys.meta_path`` (once); a no-op if triton is already imported."""
    if "triton" not in sys.modules and not any(isinstance(f, TritonGuard) for f in sys.meta_path):
        sys.meta_path.insert(0, TritonGuard())
