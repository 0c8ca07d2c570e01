"""What learned codecs share: loading weights safely and building the entropy coder's tables."""

from __future__ import annotations

import pickle
import struct
import threading
from contextlib import contextmanager

from engine.errors import CodecError, FormatError

# Buffers that the entropy models derive (EntropyBottleneck.update(), the Gaussian conditional's fixed
# scale table); not stored in weight files, and ignored when a file has them.
_DERIVED = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table")


def save_weights(model, arch: dict, path, half: bool = False) -> None:
    """Store the architecture and the learned parameters (derived coder tables left out).

    ``half``: floating-point tensors stored as float16 (half the file; the shipped weights), except the
    entropy models' quantiles, which set the coder's tables. :func:`load_weights` casts them back to
    float32, so encoder and decoder see the same rounded values.
    """
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.endswith(_DERIVED)}
    if half:
        state = {k: v.half() if v.is_floating_point() and not k.endswith("quantiles") else v
                 for k, v in state.items()}
    torch.save({"arch": dict(arch), "state_dict": state}, path)


def load_weights(build_model, path):
    """Rebuild a model from a weights file written by :func:`save_weights` (weights_only: no pickle code)."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(blob["arch"])
        state = {k: v for k, v in blob["state_dict"].items() if not k.endswith(_DERIVED)}
        missing, unexpected = model.load_state_dict(state, strict=False)
    except (OSError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as e:
        raise CodecError(f"cannot load weights {path}: {e}") from e
    if unexpected or any(not k.endswith(_DERIVED) for k in missing):
        raise CodecError(f"weights {path} do not fit the model (missing {missing}, unexpected {unexpected})")
    # Coder tables are computed on the CPU in float32 so that every machine derives the same tables.
    from compressai.entropy_models import EntropyBottleneck

    if hasattr(model, "update_tables"):  # e.g. the Gaussian conditional's fixed scale table
        model.update_tables()
    for m in model.modules():
        if isinstance(m, EntropyBottleneck):
            m.update(force=True)
    return model.eval()


def guarded_string(data: bytes, symbols: int) -> bytes:
    """``data`` followed by zeros, for compressai's rANS decoder, which reads without bounds checks.

    A valid string is never read past its end; a crafted one (CRCs only catch accidents) could make the
    decoder read beyond the buffer and crash the process (it did, in the fuzz run). Once the coder reads
    zeros, an escape (bypass) run ends at its first zero nibble, so it reads few words per symbol: 4 bytes
    per symbol plus 4 KiB is a margin, checked by scripts/fuzz_container.py (docs/benchmarks/fuzz.md),
    not a proof.
    """
    return bytes(data) + bytes(4 * symbols + 4096)


_onednn_lock = threading.Lock()
_onednn_off_users = 0
_onednn_saved = True


@contextmanager
def onednn_off(active: bool = True):
    """CPU convolutions through PyTorch's own kernels instead of oneDNN (mkldnn), while inside.

    oneDNN picks its algorithm (and so its float rounding) by batch size and thread count: measured on
    this project's models, a transposed convolution's output changed in the last bit between 1 and 2
    threads, and a convolution's between a batch of 1 and of 3. PyTorch's own kernels compute each image
    with the same sequence of operations whatever the batch and thread count. The switch is global in
    torch, so it is reference-counted: it stays off while any thread needs it.
    """
    global _onednn_off_users, _onednn_saved
    if not active:
        yield
        return
    import torch

    with _onednn_lock:
        if _onednn_off_users == 0:
            _onednn_saved = torch.backends.mkldnn.enabled
        _onednn_off_users += 1
        torch.backends.mkldnn.enabled = False
    try:
        yield
    finally:
        with _onednn_lock:
            _onednn_off_users -= 1
            if _onednn_off_users == 0:
                torch.backends.mkldnn.enabled = _onednn_saved


def to_device(array, device: str):
    """A float32 tensor of ``array`` on ``device``; to a GPU through pinned memory, without blocking."""
    import numpy as np
    import torch

    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if device.startswith("cuda"):
        return t.pin_memory().to(device, non_blocking=True)
    return t


class LearnedCodecMixin:
    """Loads the codec's weights for its quality; networks go to the device, entropy coding stays on the CPU."""

    # Children kept on the CPU: entropy models, and whatever computes entropy-coding parameters, so that
    # the indexes the coder uses are the same on every machine.
    cpu_modules: tuple[str, ...] = ("entropy_bottleneck", "gaussian_conditional", "h_a", "h_s")
    # Whether the CPU transforms must avoid oneDNN (see onednn_off) to give the same floats whatever the
    # batch size and thread count; measured per codec (tests/engine/test_batch.py checks it).
    exact_cpu_kernels: bool = True

    def __init__(self, quality: int, device: str = "auto", weights=None):
        super().__init__(quality, device, weights)
        from engine.device import resolve_device

        path = self.weights_path
        if self.user_weights is not None and not path.is_file():
            raise CodecError(f"weights file {path} does not exist")
        if path is None or not path.is_file():
            raise CodecError(
                f"weights for codec {self.info.id!r} quality {self.quality} are not installed ({path}); "
                f"train them with: hsic train --codec {self.info.id} --quality {self.quality}"
            )
        self.torch_device = resolve_device(device)
        if self.torch_device.startswith("cuda"):
            import torch

            # Same GPU, same floats on every run: no autotuned (timing-dependent) convolution algorithms.
            torch.backends.cudnn.benchmark = False
            torch.backends.cudnn.deterministic = True
        self.model = load_weights(self.build_model, path)
        for name, child in self.model.named_children():
            if name not in self.cpu_modules:
                child.to(self.torch_device)


def pack_strings(shape: tuple[int, ...], groups: list[list[bytes]]) -> bytes:
    """Serialise a latent shape and groups of rANS strings (e.g. [y strings, z strings]) into one payload.

    Layout: u8 ndim, u16 x ndim shape, u8 group count, then per group u32 count and, per string, u32 length
    and the bytes. The lengths cost a few bytes per tile; they are counted in the rate like everything else.
    """
    parts = [struct.pack("<B", len(shape)), struct.pack(f"<{len(shape)}H", *shape), struct.pack("<B", len(groups))]
    for group in groups:
        parts.append(struct.pack("<I", len(group)))
        for s in group:
            parts += [struct.pack("<I", len(s)), s]
    return b"".join(parts)


def unpack_strings(data: bytes, max_strings: int) -> tuple[tuple[int, ...], list[list[bytes]]]:
    """Inverse of :func:`pack_strings`; FormatError on anything malformed (never reads past ``data``)."""
    try:
        (ndim,) = struct.unpack_from("<B", data, 0)
        shape = struct.unpack_from(f"<{ndim}H", data, 1)
        pos = 1 + 2 * ndim
        (ngroups,) = struct.unpack_from("<B", data, pos)
        pos += 1
        groups = []
        for _ in range(ngroups):
            (count,) = struct.unpack_from("<I", data, pos)
            pos += 4
            if count > max_strings:
                raise FormatError(f"tile holds {count} strings, at most {max_strings} expected")
            group = []
            for _ in range(count):
                (n,) = struct.unpack_from("<I", data, pos)
                pos += 4
                if pos + n > len(data):
                    raise FormatError("tile string runs past the end of the tile")
                group.append(data[pos:pos + n])
                pos += n
            groups.append(group)
    except struct.error as e:
        raise FormatError(f"corrupt tile: {e}") from None
    if pos != len(data):
        raise FormatError("trailing bytes after the tile's strings")
    return tuple(shape), groups
