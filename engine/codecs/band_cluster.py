"""``band-cluster``: band-by-band coding with one small Balle model per interval of correlated bands.

After Mijares i Verdu et al.; the network is :mod:`engine.models.band_cluster`, the
partition search :mod:`engine.band_partition`. Training finds, per band count seen in the training
data (a sensor), the partition into ``groups`` intervals from the bands' mean correlation
(:meth:`BandClusterCodec.prepare_arch`) and stores it in the weights' architecture; a band count
without a stored partition uses the rescaled partition of the nearest stored band count.

Tile payload: :func:`engine.format.strings.pack_strings` with one group of strings per interval and
one string per band.
"""

from __future__ import annotations

import numpy as np

from engine.codecs.base import CodecInfo, TileCodec
from engine.codecs.learned import LearnedCodecMixin, guarded_string, to_device
from engine.codecs.spatial import random_patches
from engine.errors import FormatError
from engine.format.strings import pack_strings, unpack_strings
from engine.registry import register

_MAX_STRINGS = 4096  # strings in one group: at most one per band


@register
class BandClusterCodec(LearnedCodecMixin, TileCodec):
    info = CodecInfo(
        id="band-cluster",
        title="Band by band, one small Balle model (48 filters) per interval of correlated bands",
        paper="Mijares i Verdu et al., Hyperspectral remote sensing data compression with neural networks",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    patch = 32  # a factorized prior has no spatial context: small patches, more steps per CPU minute
    # Five intervals as the paper's AVIRIS partition; intervals hold 1/32 to 0.4 of the bands.
    recipes = {q: {"arch": {"groups": 5, "N": 48, "min_frac": 1 / 32, "max_frac": 0.4, "center": True,
                            "input_gain": 20.0},
                   "lmbda": lmbda, "batch": 2}
               for q, lmbda in ((1, 500.0), (2, 4000.0), (3, 30000.0))}

    @staticmethod
    def build_model(arch: dict):
        from engine.models.band_cluster import BandCluster

        return BandCluster(**arch)

    @classmethod
    def prepare_arch(cls, arch: dict, scenes) -> dict:
        """Partitions per band count from the mean band correlation of the training scenes with that count."""
        from engine.band_partition import band_correlation, find_partition, size_limits

        sums: dict[int, tuple[np.ndarray, int]] = {}
        for _name, x, valid in scenes:
            r = band_correlation(x, valid)
            total, count = sums.get(x.shape[0], (0.0, 0))
            sums[x.shape[0]] = (total + r, count + 1)
        parts = {}
        for bands, (total, count) in sorted(sums.items()):
            lo, hi = size_limits(bands, arch["groups"], arch["min_frac"], arch["max_frac"])
            parts[str(bands)] = find_partition(total / count, arch["groups"], lo, hi)
        return {**arch, "partitions": parts}

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """Random all-band patches (batch, B, P, P): the model routes each band to its interval."""
        return random_patches(cube, valid, rng, batch, cls.patch)

    def encode_tile(self, tile: np.ndarray) -> bytes:
        import torch

        x = to_device(tile[None], self.torch_device)
        with torch.no_grad():
            groups, shape = self.model.compress(x)
        return pack_strings(shape, groups)

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        import torch

        bands, rows, cols = shape
        latent_shape, groups = unpack_strings(data, _MAX_STRINGS)
        if latent_shape != self.model.latent_shape(rows, cols):
            raise FormatError(f"tile latent shape {latent_shape} does not fit a {rows} x {cols} tile")
        if [len(g) for g in groups] != self.model.strings_per_group(bands):
            raise FormatError(f"tile strings per band interval {[len(g) for g in groups]} do not fit "
                              f"{bands} bands")
        self.model.check_means(groups, bands)
        # compressai's rANS decoder reads without bounds checks: see guarded_string.
        n = self.model.symbols_per_string(latent_shape)
        groups = [[guarded_string(s, n) for s in g] for g in groups]
        with torch.no_grad():
            x_hat = self.model.decompress(groups, latent_shape, bands, (rows, cols), self.torch_device)
        return x_hat[0].cpu().numpy().astype(np.float32, copy=False)
