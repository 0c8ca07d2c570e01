"""Choice of the torch device for inference and training."""

from __future__ import annotations

from engine.errors import InputError

DEVICES = ("auto", "cpu", "cuda")


def resolve_device(device: str = "auto") -> str:
    """Map 'auto' | 'cpu' | 'cuda' to a torch device string; 'auto' picks CUDA when torch sees a GPU."""
    if device not in DEVICES:
        raise InputError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")
    import torch

    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise InputError("device 'cuda' was asked for, but torch sees no CUDA GPU here; use --device cpu or auto")
    return device
