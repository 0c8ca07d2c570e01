"""The seed codecs on the scene's spectral stage: their networks code K whitened KLT component planes
instead of the raw bands (issue 15).

A seed codec's weights say which input they take (their architecture's ``components``): 0 or absent,
the raw bands (every weights file written before this stage existed); K > 0, the stage's planes:

    fit (once per scene): mean, k <= K leading KLT vectors (engine.klt.make_stage) -> the file's scene section
    encode: tile (B,h,w) -> components (k,h,w) / their std -> zero-padded to K planes -> the codec's network
    decode: the network's K planes -> x std -> mean + basis @ components, only for the bands asked for

The planes have unit variance over the scene (each component's std is the stage's side information,
``log_std``, in quarter octaves), so a network meets the same input statistics on every sensor. The
training loss weighs each plane's error by its component's variance over the band count: it is the
MSE of the bands (the basis is orthonormal), which is what the codec is measured by.

k: the leading components whose std is above the stage's step (components below it hold less than the
quantisation noise of a step that fine; their planes stay zero). The step also sets the precision of
the stored basis and mean (make_stage: their error adds 1.5 % of step^2 / 12 to the MSE); it is a field of
the architecture (``stage_step``), 0.002 for the shipped weights: the ``klt`` preset of about 0.5
bpppc, finer than any seed codec's rate, so the stage costs a few kB per scene and no visible error.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from engine.errors import CodecError, FormatError, InputError
from engine.klt import KLTAccumulator, SpectralStage, make_stage

COMPONENTS = 16  # planes per tile of the shipped stage-input weights
STAGE_STEP = 0.002


def significant(var: np.ndarray, step: float, channels: int) -> int:
    """Leading components worth coding: std above ``step``, at most ``channels``, at least 1."""
    return int(max(1, min(channels, int(np.sum(np.sqrt(np.maximum(var, 0.0)) > step)))))


def fit_stage(tiles: Iterable[tuple[np.ndarray, np.ndarray | None]], bands: int, channels: int,
              step: float) -> SpectralStage:
    """The scene's stage from (normalised tile, valid mask) pairs (one streaming pass)."""
    acc = KLTAccumulator(bands)
    for x, valid in tiles:
        acc.add(x, valid)
    if acc.n == 0:  # an all-nodata scene: a trivial stage
        acc.add(np.zeros((bands, 1, 1), np.float32))
    mean, basis, var = acc.klt()
    return make_stage(mean, basis, var, acc.used_bands(), step, significant(var, step, channels))


class ComponentPlanes:
    """A stage as the networks see it: ``channels`` whitened planes per tile, and back to bands."""

    def __init__(self, stage: SpectralStage, channels: int):
        if stage.k > channels:
            raise FormatError(f"spectral stage has {stage.k} components, the weights code {channels}")
        self.stage, self.channels = stage, channels
        k = stage.k
        self.std = np.zeros(channels)
        self.std[:k] = stage.step * 2.0 ** (stage.log_std.astype(np.float64) / 4)
        self.inv_std = np.zeros(channels)
        self.inv_std[:k] = 1.0 / self.std[:k]
        self.basis = np.zeros((stage.bands, channels))
        self.basis[:, :k] = stage.basis
        self.mean = stage.mean

    def whiten(self, tile: np.ndarray) -> np.ndarray:
        """(channels, h, w) float32 unit-variance planes of a normalised (bands, h, w) tile."""
        b, h, w = tile.shape
        c = self.basis.T @ (tile.reshape(b, -1).astype(np.float64) - self.mean[:, None])
        return (c * self.inv_std[:, None]).reshape(self.channels, h, w).astype(np.float32)

    def expand(self, planes: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
        """Normalised samples (len(bands), h, w) from decoded planes (all bands when None)."""
        k, h, w = planes.shape
        mean, basis = (self.mean, self.basis) if bands is None else (self.mean[bands], self.basis[bands])
        c = planes.reshape(k, -1).astype(np.float64) * self.std[:, None]
        return (mean[:, None] + basis @ c).reshape(-1, h, w).astype(np.float32)

    def weights(self) -> np.ndarray:
        """Per plane, the band-MSE weight of its squared error: component variance / band count."""
        return (self.std ** 2 / self.stage.bands).astype(np.float32)


# Training: one stage per prepared scene (engine.training keeps its scenes in memory, so the cube
# object identifies the scene; the entry goes when the cube does).
_training_stages: dict[int, ComponentPlanes] = {}


def training_planes(cube: np.ndarray, valid: np.ndarray, channels: int, step: float) -> ComponentPlanes:
    """The planes of a training scene, fitted as the codec fits a scene it compresses (cached)."""
    key = id(cube)
    if key not in _training_stages:
        stage = fit_stage([(cube, valid)], cube.shape[0], channels, step)
        _training_stages[key] = ComponentPlanes(stage, channels)
        weakref.finalize(cube, _training_stages.pop, key, None)
    return _training_stages[key]


def plane_batch(cube: np.ndarray, valid: np.ndarray, patches: np.ndarray, patch_valid: np.ndarray,
                arch: dict) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training arrays for a batch of band patches (N, B, P, P) of one scene: the whitened planes
    (N, K, P, P), their loss weights (plane weight where the pixel has a valid band, else 0) and the
    band count of each sample (N,), which turns bits into bits per band sample."""
    planes = training_planes(cube, valid, arch["components"], arch["stage_step"])
    xb = np.stack([planes.whiten(p) for p in patches])
    any_valid = patch_valid.any(axis=1, keepdims=True)
    vb = planes.weights()[None, :, None, None] * any_valid
    return xb, vb.astype(np.float32), np.full(len(xb), cube.shape[0], np.float32)


def plane_loss(out: dict, xb, vb, bands, lmbda: float):
    """lmbda * band MSE + bits per band sample, for networks on the planes; returns (loss, metrics).

    ``vb`` holds each plane's weight (variance / bands) at valid pixels: the weighted squared error summed
    over planes is the band MSE of the K kept components at that pixel."""
    from engine.losses import likelihood_bits

    pixels = (vb.sum(1) > 0).sum().clamp_min(1)
    mse = ((out["x_hat"] - xb) ** 2 * vb).sum() / pixels
    n, _, h, w = xb.shape
    bits = likelihood_bits(out["likelihoods"]) / (h * w * bands.sum())
    return lmbda * mse + bits, {"mse": mse.item(), "bpppc": bits.item()}


class StageInputMixin:
    """For a learned tile codec (before it in the bases) whose weights may take the stage's planes.

    The codec's own network builder is ``build_network(arch)``; ``build_model`` adds the input facts.
    An instance with stage-input weights has ``uses_scene_stage`` True and codes ``components`` planes
    through the codec's own tile coding (``encode_tiles`` / ``decode_tiles`` of the next base); it keeps
    the decoded planes per tile (``decode_latents``) and makes only the bands asked for (``expand``).
    """

    @classmethod
    def build_network(cls, arch: dict):
        raise NotImplementedError

    @classmethod
    def build_model(cls, arch: dict):
        model = cls.build_network(arch)
        model.components = int(arch.get("components", 0))
        model.stage_step = float(arch.get("stage_step", STAGE_STEP))
        return model

    def __init__(self, quality: int, device: str = "auto", weights=None):
        super().__init__(quality, device, weights)
        self.components = self.model.components
        self.uses_scene_stage = self.components > 0  # per weights file: raw-band weights have no stage
        self.stage: SpectralStage | None = None
        self.planes: ComponentPlanes | None = None

    def fit_scene(self, tiles, bands: int) -> bytes:
        if not self.uses_scene_stage:
            return super().fit_scene(tiles, bands)
        blob = fit_stage(tiles, bands, self.components, self.model.stage_step).to_bytes()
        self.bind_scene(blob, bands)  # code against exactly what a decoder reads back
        return blob

    def bind_scene(self, blob: bytes, bands: int) -> None:
        if not self.uses_scene_stage:
            return super().bind_scene(blob, bands)
        try:
            stage = SpectralStage.from_bytes(blob)
        except (ValueError, IndexError, OverflowError) as e:  # FormatError is a ValueError too
            raise FormatError(f"corrupt spectral stage: {e}") from e
        if stage.bands != bands:
            raise FormatError(f"spectral stage has {stage.bands} bands, the file {bands}")
        self.stage, self.planes = stage, ComponentPlanes(stage, self.components)

    def _bound(self) -> ComponentPlanes:
        if self.planes is None:
            raise CodecError(f"codec {self.info.id!r} codes against a scene stage: call fit_scene or "
                             "bind_scene first")
        return self.planes

    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        if not self.uses_scene_stage:
            return super().encode_tiles(tiles)
        planes = self._bound()
        return super().encode_tiles([planes.whiten(t) for t in tiles])

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return self.encode_tiles([tile])[0]

    def decode_latents(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list:
        if not self.uses_scene_stage:
            return super().decode_latents(items)
        planes = self._bound()
        for _, (bands, _, _) in items:
            if bands != planes.stage.bands:
                raise FormatError(f"tile of {bands} bands for a {planes.stage.bands}-band stage")
        return super().decode_tiles([(data, (self.components, h, w)) for data, (_, h, w) in items])

    def expand(self, latent, bands: np.ndarray | None) -> np.ndarray:
        if not self.uses_scene_stage:
            return super().expand(latent, bands)
        return self._bound().expand(latent, bands)

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        if not self.uses_scene_stage:
            return super().decode_tiles(items)
        return [self.expand(p, None) for p in self.decode_latents(items)]

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return self.decode_tiles([(data, shape)])[0]

    def decode_symbols(self, data: bytes, shape: tuple[int, int, int]) -> list[np.ndarray]:
        if self.uses_scene_stage:
            shape = (self.components, *shape[1:])
        return super().decode_symbols(data, shape)
