"""What learned codecs share: the base class :class:`LearnedCodecMixin` (its weights, devices and the
training hooks engine.training calls), loading and saving weights safely, building the entropy coder's
tables, and reading rANS strings safely (:func:`guarded_string`). Their strings are packed into tile
payloads by :mod:`engine.format.strings`."""

from __future__ import annotations

import threading
import warnings
from collections import OrderedDict
from contextlib import contextmanager
from typing import ClassVar, Iterable

import numpy as np

from engine.errors import CodecError
from engine.losses import rate_distortion_loss

# Buffers that the entropy models derive (EntropyBottleneck.update(), the Gaussian conditional's fixed
# scale table) or fix at construction (the likelihoods' lower bound, 1e-9, which float16 weights store as
# 0: fine-tuning from shipped weights then met log(0)); not stored in weight files, and ignored when a
# file has them. None of them takes part in coding: the bytes a file decodes to are unchanged.
_DERIVED = ("_quantized_cdf", "_offset", "_cdf_length", "scale_table", "likelihood_lower_bound.bound")


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
        with warnings.catch_warnings():  # torch warns about foreign pickles it then refuses: one line is ours
            warnings.simplefilter("ignore")
            blob = torch.load(path, map_location="cpu", weights_only=True)
        model = build_model(blob["arch"])
        state = {k: v for k, v in blob["state_dict"].items() if not k.endswith(_DERIVED)}
        missing, unexpected = model.load_state_dict(state, strict=False)
    except Exception as e:  # noqa: BLE001 - any file at all may be named: every failure is one line
        lines = str(e).strip().splitlines()
        why = lines[0][:200] if lines else type(e).__name__
        raise CodecError(f"cannot load weights {path}: not a weights file HSIC can load ({why})") from e
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


# Loaded models, shared by the codec instances of the same class, weights (by digest) and device: a decoder
# builds a codec per file it opens, and loading (unpickling, building the network, the entropy coder's
# tables) cost more CPU than decoding a small scene's tile (docs/benchmarks/seed_decode_speed.md). A model
# is read-only once loaded: codecs only run it (no_grad, eval); training builds its own (load_weights).
_SHARED_MODELS_KEPT = 8
_shared_models: OrderedDict[tuple, object] = OrderedDict()
_shared_models_lock = threading.Lock()


def shared_model(key: tuple, load):
    """The model cached under ``key``, or ``load()``'s, then cached (the last few keys are kept)."""
    with _shared_models_lock:
        if key in _shared_models:
            _shared_models.move_to_end(key)
            return _shared_models[key]
    model = load()  # outside the lock: two threads may both load one key; the first one stored is kept
    with _shared_models_lock:
        model = _shared_models.setdefault(key, model)
        while len(_shared_models) > _SHARED_MODELS_KEPT:
            _shared_models.popitem(last=False)
    return model


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
    import torch

    t = torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32))
    if device.startswith("cuda"):
        return t.pin_memory().to(device, non_blocking=True)
    return t


class LearnedCodecMixin:
    """Loads the codec's weights for its quality; networks go to the device, entropy coding stays on the CPU.

    It also declares how :func:`engine.training.train` trains the codec: the class attributes and class
    methods under "Training" below, whose defaults fit a plain rate-distortion codec. A codec overrides
    what it needs; ``build_model`` and ``training_batch`` it must define.
    """

    # --- Training (engine.training) --------------------------------------------------------------------
    # Per quality: the recipe of ``hsic train``: "arch" (build_model's arguments), "lmbda", and optionally
    # "batch" (default 256), "steps" (default 4000) and whatever the codec's own hooks read.
    recipes: ClassVar[dict[int, dict]] = {}
    # For codecs trained in stages: stage name -> recipe entries replacing the quality's, in training order
    # (TrainConfig.stage picks one, default the last; the recipe gets "stage"). The last stage writes
    # ``<id>-q<N>.pt``, an earlier one ``<id>-<stage>-q<N>.pt``, to be passed as ``init`` to the next.
    stages: ClassVar[dict[str, dict]] = {}
    # Whether the codec has an adversarial (GAN) stage (``hsic train --gan``: recipe["gan"] = True), in
    # which :meth:`make_adversary` returns the second network.
    adversarial: ClassVar[bool] = False

    @staticmethod
    def build_model(arch: dict):
        """The codec's network (a torch module) for an architecture (a recipe's or a weights file's "arch")."""
        raise NotImplementedError

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """A batch of training samples and their valid masks, drawn with ``rng`` from one prepared scene
        (``cube`` normalised (bands, rows, cols), ``valid`` its mask). Arrays after these two (e.g. the
        band count of codecs on the spectral stage's planes) are passed on to :meth:`training_loss`."""
        raise NotImplementedError

    @classmethod
    def prepare_arch(cls, arch: dict, scenes: Iterable[tuple[str, np.ndarray, np.ndarray]]) -> dict:
        """The architecture completed from the training data before the model is built (e.g. a band
        partition found from band correlations); ``scenes`` yields (name, x, valid) prepared cubes and is
        read only if needed. Not called when fine-tuning (the weights file's architecture is kept).
        Default: ``arch`` unchanged."""
        return arch

    @classmethod
    def training_loss(cls, model, out: dict, xb, vb, recipe: dict, *extra):
        """(loss, metrics) of the generator for one batch; metrics hold at least "mse" and "bpppc" floats.
        Default: :func:`engine.losses.rate_distortion_loss` with the recipe's "lmbda"."""
        return rate_distortion_loss(out, xb, vb, recipe["lmbda"])

    @classmethod
    def make_adversary(cls, model, recipe: dict, device):
        """A second network trained alongside (a GAN discriminator), or None (the default).

        It has ``generator_loss(out, xb, vb)`` (a tensor added to the loss), ``step(out, xb, vb)`` (updates
        itself on the detached output; returns a dict of floats) and ``state_dict()`` /
        ``load_state_dict()`` for checkpoints; it is not saved with the weights.
        """
        return None

    # --- Coding ----------------------------------------------------------------------------------------

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
        from engine import weight_files

        # The digest that file headers record, taken once per instance; it keys the shared model.
        self.loaded_sha256 = weight_files.file_sha256(weight_files.check_weights_file(path))
        self.model = shared_model((type(self), self.loaded_sha256, self.torch_device), lambda: self.load_model(path))

    def load_model(self, path):
        """The model of a weights file, its networks on the device (entropy coding on the CPU)."""
        model = load_weights(self.build_model, path)
        for name, child in model.named_children():
            if name not in self.cpu_modules:
                child.to(self.torch_device)
        return model

    @property
    def weights_sha256(self) -> str:
        return self.loaded_sha256
