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
bpppc, finer than any seed codec's rate; it sets k. For the weights on a fixed base the basis and mean are
stored only as precisely as the quality's own step asks (:func:`stage_precision`): at 0.002 the stage was
1.7-2.5 kB, a fifth of a quality-1 file of a 128 x 128 train crop; now 0.5-1 kB at quality 1.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterable

import numpy as np

from engine.errors import CodecError, FormatError
from engine.format.strings import pack_strings, unpack_strings
from engine.klt import KLTAccumulator, SpectralStage, make_stage

COMPONENTS = 16  # planes per tile of the shipped stage-input weights
STAGE_STEP = 0.002


def step_for(lmbda: float) -> float:
    """The quantiser step that a rate-distortion weight asks for at high rate (for the weights on a fixed
    base, engine.models.stage_base): lmbda * D + R, D the band MSE and R bits per band sample, is
    stationary in the step where lmbda * step^2 * ln 2 = 6."""
    return float(np.sqrt(6.0 / (lmbda * np.log(2.0))))


# The seed codecs' qualities on the Haar base: lmbda (band MSE against bits per band sample, plane_loss)
# and, through step_for, the quantiser step each asks for.
PLANE_LMBDAS = {1: 1000.0, 2: 5000.0, 3: 30000.0}


def based_recipes(arch: dict, **extra) -> dict[int, dict]:
    """Each quality's recipe on the Haar base: ``arch`` with that quality's step, its lmbda, ``extra``."""
    return {q: {"arch": {**arch, "base_step": round(step_for(lmbda), 4)}, "lmbda": lmbda, **extra}
            for q, lmbda in PLANE_LMBDAS.items()}


# The stored basis and mean need only be as precise as the codec's own error: k planes quantised with step
# s add about (k / bands) s^2 / 12 per band sample, and make_stage's basis error is its share of P^2 / 12
# with P = PRECISION_FACTOR x s x sqrt(k / bands). Picked on the train crops (scripts/seed_train_eval.py's
# four; s2cnet and hific-se, qualities 1-3, factors 0.4 / 1 / 2 / 4): 1 and 2 gave the most PSNR per bit
# (s2cnet q1 at 2: 19 % fewer bits for 0.2 dB; at 4 the PSNR loss outweighs the bits saved).
PRECISION_FACTOR = 1.5


def stage_precision(step: float, base_step: float, k: int, bands: int) -> float:
    """The step the stored basis and mean are made precise for: the stage's ``step``, or coarser for
    weights on a fixed base quantising their planes with ``base_step`` (0: none, so the stage's step)."""
    return max(step, PRECISION_FACTOR * base_step * float(np.sqrt(max(k, 1) / max(bands, 1))))


def plane_step(arch: dict) -> float:
    """The planes' quantiser step of weights on a fixed base (orthonormal planes); 0 for any other."""
    return 0.0 if arch.get("whiten", True) else float(arch.get("base_step", 0.0))


def significant(var: np.ndarray, step: float, channels: int) -> int:
    """Leading components worth coding: std above ``step``, at most ``channels``, at least 1."""
    return int(max(1, min(channels, int(np.sum(np.sqrt(np.maximum(var, 0.0)) > step)))))


def fit_stage(tiles: Iterable[tuple[np.ndarray, np.ndarray | None]], bands: int, channels: int,
              step: float, base_step: float = 0.0) -> SpectralStage:
    """The scene's stage from (normalised tile, valid mask) pairs (one streaming pass); ``base_step``: the
    planes' own quantiser step (:func:`stage_precision`)."""
    acc = KLTAccumulator(bands)
    for x, valid in tiles:
        acc.add(x, valid)
    if acc.n == 0:  # an all-nodata scene: a trivial stage
        acc.add(np.zeros((bands, 1, 1), np.float32))
    return _make(acc, step, channels, base_step)


def _make(acc: KLTAccumulator, step: float, channels: int, base_step: float) -> SpectralStage:
    mean, basis, var = acc.klt()
    k = significant(var, step, channels)
    return make_stage(mean, basis, var, acc.used_bands(), step, k,
                      precision=stage_precision(step, base_step, k, acc.bands))


class ComponentPlanes:
    """A stage as the networks see it: ``channels`` whitened planes per tile, and back to bands."""

    def __init__(self, stage: SpectralStage, channels: int, whiten: bool = True):
        if stage.k > channels:
            raise FormatError(f"spectral stage has {stage.k} components, the weights code {channels}")
        self.stage, self.channels, self.bands = stage, channels, stage.bands
        k = stage.k
        self.std = np.zeros(channels)
        if whiten:
            # At least the step: a flat scene's components have std ~0, and whitening by it would blow
            # rounding noise up into planes the entropy coder spends minutes escaping (a 1 x 1 scene did).
            self.std[:k] = stage.step * 2.0 ** (np.maximum(stage.log_std.astype(np.float64), 0.0) / 4)
        else:  # orthonormal units: one quantiser step means the same band MSE on every plane
            self.std[:k] = 1.0
        self.inv_std = np.zeros(channels)
        self.inv_std[:k] = 1.0 / self.std[:k]
        self.basis = np.zeros((stage.bands, channels))
        self.basis[:, :k] = stage.basis
        # The components by least squares on the stored basis, not by its transpose: the quantised columns
        # are not quite orthonormal, and the transpose leaks the leading components into every plane (on
        # a float train scene, a 45 dB ceiling from the stage alone at the precision of stage_precision).
        self.project = np.zeros((channels, stage.bands))
        self.project[:k] = np.linalg.pinv(stage.basis) if k else 0.0
        self.mean = stage.mean

    def whiten(self, tile: np.ndarray) -> np.ndarray:
        """(channels, h, w) float32 unit-variance planes of a normalised (bands, h, w) tile."""
        b, h, w = tile.shape
        c = self.project @ (tile.reshape(b, -1).astype(np.float64) - self.mean[:, None])
        return (c * self.inv_std[:, None]).reshape(self.channels, h, w).astype(np.float32)

    def expand(self, planes: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
        """Normalised samples (len(bands), h, w) from decoded planes (all bands when None)."""
        k, h, w = planes.shape
        mean, basis = (self.mean, self.basis) if bands is None else (self.mean[bands], self.basis[bands])
        c = planes.reshape(k, -1).astype(np.float64) * self.std[:, None]
        x = basis @ c
        x += mean[:, None]  # in place: the same sums as mean + basis @ c, one (bands, h * w) float64 array less
        return x.reshape(-1, h, w).astype(np.float32)

    def weights(self) -> np.ndarray:
        """Per plane, the band-MSE weight of its squared error: component variance / band count."""
        return (self.std ** 2 / self.stage.bands).astype(np.float32)


class ClusteredPlanes:
    """A clustered KLT: per interval of bands its own stage, each giving ``per_group`` planes in turn (an
    empty interval, on scenes with fewer bands than intervals, has no stage and zero planes)."""

    def __init__(self, bounds: list[int], stages: list[SpectralStage | None], per_group: int,
                 whiten: bool = True):
        self.bounds, self.per_group = list(bounds), per_group
        self.parts = [None if st is None else ComponentPlanes(st, per_group, whiten) for st in stages]
        self.channels, self.bands = per_group * len(stages), bounds[-1]

    def whiten(self, tile: np.ndarray) -> np.ndarray:
        zeros = np.zeros((self.per_group, *tile.shape[1:]), np.float32)
        return np.concatenate([zeros if p is None else p.whiten(tile[s:e])
                               for p, s, e in zip(self.parts, self.bounds, self.bounds[1:])])

    def expand(self, planes: np.ndarray, bands: np.ndarray | None = None) -> np.ndarray:
        sel = np.arange(self.bands) if bands is None else np.asarray(bands, dtype=np.int64)
        out = np.empty((sel.size, *planes.shape[1:]), np.float32)
        k = self.per_group
        for g, (p, s, e) in enumerate(zip(self.parts, self.bounds, self.bounds[1:])):
            mine = (sel >= s) & (sel < e)
            if p is not None and mine.any():
                out[mine] = p.expand(planes[g * k:(g + 1) * k], sel[mine] - s)
        return out

    def weights(self) -> np.ndarray:
        # Each part's variance over the scene's band count (its own weights divide by its own bands).
        return np.concatenate([np.zeros(self.per_group) if p is None else p.weights() * (p.bands / self.bands)
                               for p in self.parts]).astype(np.float32)


# Clustered stage bytes (engine.format.strings.pack_strings): the interval bounds as the "shape", and one
# group holding each interval's stage (engine.klt.SpectralStage.to_bytes; empty for an empty interval).


def clustered_bytes(bounds: list[int], stages: list[SpectralStage | None]) -> bytes:
    return pack_strings(tuple(bounds), [[b"" if st is None else st.to_bytes() for st in stages]])


def clustered_from_bytes(blob: bytes, bands: int) -> tuple[list[int], list[SpectralStage | None]]:
    """(bounds, stages) of :func:`clustered_bytes`; FormatError unless they tile bands 0..``bands``."""
    bounds, groups = unpack_strings(bytes(blob), 255)
    bounds = list(bounds)
    if len(groups) != 1 or len(groups[0]) != len(bounds) - 1 or not bounds or bounds[0] != 0 \
            or bounds[-1] != bands or any(e < s for s, e in zip(bounds, bounds[1:])):
        raise FormatError(f"clustered spectral stage does not cover the file's {bands} bands")
    stages = []
    for s, e, blob_g in zip(bounds, bounds[1:], groups[0]):
        if (e == s) != (len(blob_g) == 0):
            raise FormatError("clustered spectral stage intervals are corrupt")
        st = SpectralStage.from_bytes(blob_g) if blob_g else None
        if st is not None and st.bands != e - s:
            raise FormatError(f"interval of {e - s} bands holds a {st.bands}-band stage")
        stages.append(st)
    return bounds, stages


def fit_clustered(tiles: Iterable[tuple[np.ndarray, np.ndarray | None]], bounds: list[int], per_group: int,
                  step: float, base_step: float = 0.0) -> list[SpectralStage | None]:
    """One stage per interval of ``bounds`` (one streaming pass); None for an empty interval."""
    parts = [(s, e) for s, e in zip(bounds, bounds[1:])]
    accs = [KLTAccumulator(e - s) if e > s else None for s, e in parts]
    for x, valid in tiles:
        for acc, (s, e) in zip(accs, parts):
            if acc is not None:
                acc.add(x[s:e], None if valid is None else valid[s:e])
    stages = []
    for acc in accs:
        if acc is None:
            stages.append(None)
            continue
        if acc.n == 0:
            acc.add(np.zeros((acc.bands, 1, 1), np.float32))
        stages.append(_make(acc, step, per_group, base_step))
    return stages


# Training: the planes of each prepared scene, made once (engine.training keeps its scenes in memory, so
# the cube object identifies the scene; the entry goes when the cube does).
_training_planes: dict[int, object] = {}


def training_planes(cube: np.ndarray, make):
    """``make()`` (the scene's planes, fitted as the codec fits a scene it compresses), cached per cube."""
    key = id(cube)
    if key not in _training_planes:
        _training_planes[key] = make()
        weakref.finalize(cube, _training_planes.pop, key, None)
    return _training_planes[key]


def plane_batch(planes, patches: np.ndarray, patch_valid: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Training arrays for a batch of band patches (N, B, P, P) of one scene: the whitened planes
    (N, K, P, P), their loss weights (plane weight where the pixel has a valid band, else 0) and the
    band count of each sample (N,), which turns bits into bits per band sample."""
    xb = np.stack([planes.whiten(p) for p in patches])
    any_valid = patch_valid.any(axis=1, keepdims=True)
    vb = planes.weights()[None, :, None, None] * any_valid
    return xb, vb.astype(np.float32), np.full(len(xb), planes.bands, np.float32)


def plane_loss(out: dict, xb, vb, bands, lmbda: float, bits=None):
    """lmbda * band MSE + bits per band sample, for networks on the planes; returns (loss, metrics).

    ``vb`` holds each plane's weight (variance / bands) at valid pixels: the weighted squared error summed
    over planes is the band MSE of the K kept components at that pixel. ``bits``: the batch's bits when
    not all of ``out["likelihoods"]`` is written (mdim-drf's masked channels)."""
    from engine.losses import likelihood_bits

    pixels = (vb.sum(1) > 0).sum().clamp_min(1)
    mse = ((out["x_hat"] - xb) ** 2 * vb).sum() / pixels
    n, _, h, w = xb.shape
    bits = (likelihood_bits(out["likelihoods"]) if bits is None else bits) / (h * w * bands.sum())
    return lmbda * mse + bits, {"mse": mse.item(), "bpppc": bits.item()}


class StageInputMixin:
    """For a learned tile codec (before it in the bases) whose weights may take the stage's planes.

    The codec's own network builder is ``build_network(arch)``; ``build_model`` adds the input facts.
    An instance with stage-input weights has ``uses_scene_stage`` True and codes ``components`` planes
    through the codec's own tile coding (``encode_tiles`` / ``decode_tiles`` of the next base, which must
    not call ``encode_tile`` / ``decode_tile``: those are this mixin's); it keeps the decoded planes per
    tile (``decode_latents``) and makes only the bands asked for (``expand``).
    """

    @classmethod
    def build_network(cls, arch: dict):
        raise NotImplementedError

    @classmethod
    def build_model(cls, arch: dict):
        model = cls.build_network(arch)
        model.components = int(arch.get("components", 0))
        model.stage_step = float(arch.get("stage_step", STAGE_STEP))
        # False: the planes in the KLT's orthonormal units (the weights with a fixed base, stage_base)
        model.whiten = bool(arch.get("whiten", True))
        model.base_step = plane_step(arch)
        return model

    def __init__(self, quality: int, device: str = "auto", weights=None):
        super().__init__(quality, device, weights)
        self.components = self.model.components
        self.uses_scene_stage = self.components > 0  # per weights file: raw-band weights have no stage
        self.stage: StageBytes | None = None
        self.planes = None  # ComponentPlanes or ClusteredPlanes, once bound

    # --- the stage: one KLT of all bands; band-cluster overrides these three for its clustered KLT -------

    def stage_bytes(self, tiles, bands: int) -> bytes:
        """Fit the scene's stage from (tile, valid) pairs; its bytes."""
        return fit_stage(tiles, bands, self.components, self.model.stage_step, self.model.base_step).to_bytes()

    def stage_planes(self, blob: bytes, bands: int):
        """The planes of a stage's bytes (FormatError if they are corrupt or not for ``bands`` bands)."""
        stage = SpectralStage.from_bytes(blob)
        if stage.bands != bands:
            raise FormatError(f"spectral stage has {stage.bands} bands, the file {bands}")
        return ComponentPlanes(stage, self.components, self.model.whiten)

    @classmethod
    def scene_planes(cls, arch: dict, cube: np.ndarray, valid: np.ndarray):
        """The planes of a prepared training scene, as :meth:`stage_bytes` fits them."""
        stage = fit_stage([(cube, valid)], cube.shape[0], arch["components"], arch["stage_step"], plane_step(arch))
        return ComponentPlanes(stage, arch["components"], arch.get("whiten", True))

    def scene_statistics(self, tiles, bands: int):
        if not self.uses_scene_stage:
            return super().scene_statistics(tiles, bands)
        return self.stage_bytes(tiles, bands)  # the stage's step is fixed: no quantiser step to wait for

    def stage_from_statistics(self, stats, bands: int) -> bytes:
        if not self.uses_scene_stage:
            return super().stage_from_statistics(stats, bands)
        self.bind_scene(stats, bands)  # code against exactly what a decoder reads back
        return stats

    def bind_scene(self, blob: bytes, bands: int) -> None:
        if not self.uses_scene_stage:
            return super().bind_scene(blob, bands)
        try:
            planes = self.stage_planes(blob, bands)
        except (ValueError, IndexError, OverflowError) as e:  # FormatError is a ValueError too
            raise FormatError(f"corrupt spectral stage: {e}") from e
        self.stage, self.planes = StageBytes(bytes(blob)), planes

    def _bound(self):
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
            if bands != planes.bands:
                raise FormatError(f"tile of {bands} bands for a {planes.bands}-band stage")
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

    # --- training (engine.training hooks) ---------------------------------------------------------------

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, ...]:
        """The codec's own batch; for stage-input weights, its planes, loss weights and band counts."""
        xb, vb = super().training_batch(cube, valid, rng, batch, recipe)
        arch = recipe["arch"]
        if not arch.get("components", 0):
            return xb, vb
        return plane_batch(training_planes(cube, lambda: cls.scene_planes(arch, cube, valid)), xb, vb)

    @classmethod
    def training_loss(cls, model, out: dict, xb, vb, recipe: dict, *extra):
        """For the planes, :func:`plane_loss` (band MSE + bits per band sample); else the codec's."""
        if extra:
            return plane_loss(out, xb, vb, extra[0], recipe["lmbda"])
        return super().training_loss(model, out, xb, vb, recipe)


class StageBytes(bytes):
    """The bound stage as a decoder reads it from the file (``codec.stage.to_bytes()``, as for ``klt``)."""

    def to_bytes(self) -> bytes:
        return bytes(self)
