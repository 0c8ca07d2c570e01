"""What learned codecs share: loading weights safely and building the entropy coder's tables."""

from __future__ import annotations

import pickle

from engine.errors import CodecError

# Buffers that EntropyBottleneck.update() derives from the parameters; not stored in weight files.
_DERIVED = ("_quantized_cdf", "_offset", "_cdf_length")


def save_weights(model, arch: dict, path) -> None:
    """Store the architecture and the learned parameters (derived coder tables left out)."""
    import torch

    state = {k: v.detach().cpu() for k, v in model.state_dict().items() if not k.endswith(_DERIVED)}
    torch.save({"arch": dict(arch), "state_dict": state}, path)


def load_weights(build_model, path):
    """Rebuild a model from a weights file written by :func:`save_weights` (weights_only: no pickle code)."""
    import torch

    try:
        blob = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(blob["arch"])
        missing, unexpected = model.load_state_dict(blob["state_dict"], strict=False)
    except (OSError, KeyError, TypeError, RuntimeError, pickle.UnpicklingError) as e:
        raise CodecError(f"cannot load weights {path}: {e}") from e
    if unexpected or any(not k.endswith(_DERIVED) for k in missing):
        raise CodecError(f"weights {path} do not fit the model (missing {missing}, unexpected {unexpected})")
    # Coder tables are computed on the CPU in float32 so that every machine derives the same tables.
    for m in model.modules():
        if hasattr(m, "update") and hasattr(m, "_quantized_cdf"):
            m.update(force=True)
    return model.eval()


class LearnedCodecMixin:
    """Loads the codec's weights for its quality; networks go to the device, entropy coding stays on the CPU."""

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
        self.model = load_weights(self.build_model, path)
        for name, child in self.model.named_children():
            if not name.startswith("entropy"):
                child.to(self.torch_device)
