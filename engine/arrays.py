"""Array helpers shared by the Numba kernels."""

from __future__ import annotations

import numpy as np

from engine.errors import InputError


def kernel_ready(a: np.ndarray, what: str) -> np.ndarray:
    """Give Numba a dtype it supports: native byte order, no bool/float16; reject non-real data."""
    if a.dtype.kind == "b":
        return a.view(np.uint8)
    if a.dtype.kind not in "iuf":
        raise InputError(f"{what} must be a real numeric array, got dtype {a.dtype}")
    if a.dtype == np.float16:
        return a.astype(np.float32)
    if not a.dtype.isnative:
        return a.astype(a.dtype.newbyteorder("="))
    return a
