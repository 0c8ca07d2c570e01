"""Tile codecs around the spatial models of :mod:`engine.models.spatial`: ``sscnet``, ``cae3d``,
``bmshj2018-factorized`` and ``bmshj2018-hyperprior``.

A tile (bands, rows, cols) goes through the model as one image; rows and cols are padded inside the
model to what its down-sampling needs. The rANS strings (and the latent shape) are packed into the tile
payload with :func:`engine.format.strings.pack_strings`.

Balle's codecs have two modes, told apart by the quality number: 1-3 take all bands as input channels
(through the band adapter), 11-13 code band by band with one shared single-channel model.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.codecs.base import CodecInfo, TileCodec, same_shape_runs
from engine.codecs.learned import LearnedCodecMixin, guarded_string, onednn_off, to_device
from engine.errors import FormatError
from engine.format.strings import pack_strings, unpack_strings
from engine.registry import register

# Latent strings per tile are one per image in the batch: 1, or one per band in the band-by-band mode.
_MAX_STRINGS = 4096


# Rate-distortion trade-offs of the three rates. One architecture for all three, so the outer rates are
# fine-tuned from the middle one (``hsic train --init``), as training from scratch costs hours on a CPU.
_LMBDAS = (250.0, 5000.0, 100000.0)


def _recipes(arch: dict, first: int = 1, batch: int = 8, lmbdas=_LMBDAS, **extra) -> dict[int, dict]:
    return {first + i: {"arch": arch, "lmbda": lmbda, "batch": batch, **extra} for i, lmbda in enumerate(lmbdas)}


# Codecs whose small latent is nearly saturated at the middle rate: the top rate needs a far larger
# lmbda to spend more bits (measured: lmbda 1e5 gave no more bits than 5e3 after fine-tuning).
_LMBDAS_SATURATED = (250.0, 5000.0, 1e6)


def random_patches(cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int, patch: int,
                   band_by_band: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """Random patches (batch, B, P, P) of a scene and its valid mask, or single bands (batch, 1, P, P)."""
    bands, rows, cols = cube.shape
    p = min(patch, rows, cols)
    ys = rng.integers(0, rows - p + 1, size=batch)
    xs = rng.integers(0, cols - p + 1, size=batch)
    if band_by_band:
        bs = rng.integers(0, bands, size=batch)
        return tuple(np.stack([a[b, y:y + p, x:x + p] for b, y, x in zip(bs, ys, xs)])[:, None].copy()
                     for a in (cube, valid))
    return tuple(np.stack([a[:, y:y + p, x:x + p] for y, x in zip(ys, xs)]) for a in (cube, valid))


class SpatialCodec(LearnedCodecMixin, TileCodec):
    """A learned codec whose model codes whole tiles (see the module docstring)."""

    patch: ClassVar[int] = 32  # training patch size (pixels)

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """Random patches (batch, B, P, P) of one scene, or single-band patches (batch, 1, P, P)."""
        return random_patches(cube, valid, rng, batch, cls.patch, recipe.get("band_by_band", False))

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return self.encode_tiles([tile])[0]

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return self.decode_tiles([(data, shape)])[0]

    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        """Tiles of one shape go through the model together, ``batch_size`` at a time."""
        import torch

        out = []
        for run in same_shape_runs([t.shape for t in tiles], self.batch_size):
            x = to_device(np.stack([tiles[i] for i in run]), self.torch_device)
            with torch.no_grad(), onednn_off(self.exact_cpu_kernels):
                groups, shape = self.model.compress(x)
            # Each group holds the same number of strings per tile (1, or one per band), tile after tile.
            n = len(run)
            out += [pack_strings(shape, [g[k * len(g) // n:(k + 1) * len(g) // n] for g in groups])
                    for k in range(n)]
        return out

    def _parse(self, data: bytes, shape: tuple[int, int, int]) -> tuple[tuple[int, ...], list[list[bytes]]]:
        """A tile's latent shape and its rANS strings, checked against what the codec writes for ``shape``."""
        bands, rows, cols = shape
        latent_shape, groups = unpack_strings(data, _MAX_STRINGS)
        if latent_shape != self.model.latent_shape(bands, rows, cols):
            raise FormatError(f"tile latent shape {latent_shape} does not fit a {bands} x {rows} x {cols} tile")
        symbols = self.model.symbols_per_string(latent_shape)
        if len(groups) != len(symbols):
            raise FormatError(f"tile has {len(groups)} groups of strings, the codec writes {len(symbols)}")
        per_tile = self.model.strings_per_tile(bands)
        if any(len(g) != per_tile for g in groups):
            raise FormatError(f"tile has {[len(g) for g in groups]} strings per group, the codec writes {per_tile}")
        if getattr(self.model, "center", False):
            self.model.check_means(groups, bands)
        # compressai's rANS decoder reads without bounds checks: see guarded_string.
        return latent_shape, [[guarded_string(s, n) for s in g] for g, n in zip(groups, symbols)]

    def decode_symbols(self, data: bytes, shape: tuple[int, int, int]) -> list[np.ndarray]:
        """The entropy-decoded latents of a tile ([y] or [y, z]): what must agree on every device."""
        latent_shape, groups = self._parse(data, shape)
        with onednn_off(self.exact_cpu_kernels):
            return [t.numpy() for t in self.model.decode_symbols(groups, latent_shape)]

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        import torch

        out = []
        for run in same_shape_runs([tuple(s) for _, s in items], self.batch_size):
            bands, rows, cols = items[run[0]][1]
            parsed = [self._parse(*items[i]) for i in run]
            latent_shape = parsed[0][0]
            groups = [[s for _, gs in parsed for s in gs[j]] for j in range(len(parsed[0][1]))]
            with torch.no_grad(), onednn_off(self.exact_cpu_kernels):
                x_hat = self.model.decompress(groups, latent_shape, bands, (rows, cols), self.torch_device)
            x_hat = x_hat.cpu().numpy()
            out += [x_hat[k].astype(np.float32, copy=False) for k in range(len(run))]
        return out


@register
class SSCNetCodec(SpatialCodec):
    info = CodecInfo(
        id="sscnet",
        title="SSCNet: 2D convolutional autoencoder over all bands, entropy-coded latent",
        paper="La Grassa et al., SSCNet, in Fuchs & Demir, HySpecNet-11k, IGARSS 2023",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    recipes = _recipes({"latent": 128, "width": 32, "adapter": 32}, lmbdas=_LMBDAS_SATURATED)

    @staticmethod
    def build_model(arch: dict):
        from engine.models.spatial import SSCNet

        return SSCNet(**arch)


@register
class CAE3DCodec(SpatialCodec):
    info = CodecInfo(
        id="cae3d",
        title="3D-CAE: strided 3D convolutions with residual blocks, entropy-coded latent",
        paper="Chong et al., 3D-CAE, in Fuchs & Demir, HySpecNet-11k, IGARSS 2023",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    recipes = _recipes({"latent": 8, "width": 8}, batch=4)

    @staticmethod
    def build_model(arch: dict):
        from engine.models.spatial import CAE3D

        return CAE3D(**arch)


def _bmshj_recipes() -> dict[int, dict]:
    return {**_recipes({"N": 48, "M": 192, "adapter": 32}),
            **_recipes({"N": 32, "M": 48, "adapter": 0}, first=11, batch=16, band_by_band=True)}


@register
class Bmshj2018Factorized(SpatialCodec):
    info = CodecInfo(
        id="bmshj2018-factorized",
        title="Balle et al. factorized prior; q1-3 all bands as channels, q11-13 band by band",
        paper="Balle, Laparra, Simoncelli, End-to-end optimized image compression, ICLR 2017",
        qualities=(1, 2, 3, 11, 12, 13),
        default_quality=2,
    )
    recipes = _bmshj_recipes()

    @staticmethod
    def build_model(arch: dict):
        from engine.models.spatial import Bmshj2018

        return Bmshj2018(**arch, hyperprior=False)


@register
class Bmshj2018Hyperprior(SpatialCodec):
    info = CodecInfo(
        id="bmshj2018-hyperprior",
        title="Balle et al. scale hyperprior; q1-3 all bands as channels, q11-13 band by band",
        paper="Balle et al., Variational image compression with a scale hyperprior, ICLR 2018",
        qualities=(1, 2, 3, 11, 12, 13),
        default_quality=2,
    )
    recipes = {q: {**r, "batch": r["batch"] // 2} for q, r in _bmshj_recipes().items()}
    recipes[3] = {**recipes[3], "lmbda": _LMBDAS_SATURATED[2]}
    patch = 64  # the hyperprior down-samples by 64 (and takes half the batch of 4x larger patches)

    @staticmethod
    def build_model(arch: dict):
        from engine.models.spatial import Bmshj2018

        return Bmshj2018(**arch, hyperprior=True)
