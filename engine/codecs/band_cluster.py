"""``band-cluster``: band-by-band coding with one small Balle model per interval of correlated bands.

After Mijares i Verdu et al.; the network is :mod:`engine.models.band_cluster`, the
partition search :mod:`engine.band_partition`. Training finds, per band count seen in the training
data (a sensor), the partition into ``groups`` intervals from the bands' mean correlation
(:meth:`BandClusterCodec.prepare_arch`) and stores it in the weights' architecture; a band count
without a stored partition uses the rescaled partition of the nearest stored band count.

Tile payload: :func:`engine.format.strings.pack_strings` with one group of strings per interval and
one string per band.

That is the raw-band variant (``--arch components=0``). The shipped weights take a clustered KLT
instead (:mod:`engine.codecs.stage_input`): the partition of the bands is found as above, each interval
gets its own KLT fitted on the scene (stored in the file's scene section), and the interval's model codes
its ``components / groups`` whitened component planes, one by one, as it codes bands in the raw variant.
"""

from __future__ import annotations

import numpy as np

from engine.codecs.base import CodecInfo, TileCodec
from engine.codecs.learned import LearnedCodecMixin, guarded_string, onednn_off, to_device
from engine.codecs.spatial import random_patches
from engine.codecs.stage_input import (STAGE_STEP, ClusteredPlanes, StageInputMixin, clustered_bytes,
                                       clustered_from_bytes, fit_clustered)
from engine.errors import FormatError, InputError
from engine.format.strings import pack_strings, unpack_strings
from engine.registry import register

_MAX_STRINGS = 4096  # strings in one group: at most one per band


# The model's own arguments: a stage-input architecture adds components, stage_step, band_partitions.
_MODEL_KEYS = ("groups", "N", "partitions", "gain", "min_frac", "max_frac", "center", "input_gain")
PLANES_PER_GROUP = 4


class BandClusterNetwork(LearnedCodecMixin, TileCodec):
    """The tile coding of the network: a tile's channels (bands, or the stage's planes) interval by interval."""

    patch = 32  # a factorized prior has no spatial context: small patches, more steps per CPU minute

    @property
    def exact_kernels(self) -> bool:
        """PyTorch's own CPU kernels (onednn_off) for stage-input weights: their decode gave other floats
        with 2 threads than with 1 under oneDNN. The raw-band weights keep the kernels their files were
        written and checked with (tests/golden)."""
        return self.exact_cpu_kernels and bool(getattr(self, "uses_scene_stage", False))

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, np.ndarray]:
        """Random all-band patches (batch, B, P, P): the model routes each band to its interval (for the
        stage input, StageInputMixin turns them into planes)."""
        return random_patches(cube, valid, rng, batch, cls.patch)

    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        import torch

        out = []
        for tile in tiles:
            x = to_device(tile[None], self.torch_device)
            with torch.no_grad(), onednn_off(self.exact_kernels):
                groups, shape = self.model.compress(x)
            out.append(pack_strings(shape, groups))
        return out

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        return [self.decode_one(data, shape) for data, shape in items]

    def decode_one(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
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
        with torch.no_grad(), onednn_off(self.exact_kernels):
            x_hat = self.model.decompress(groups, latent_shape, bands, (rows, cols), self.torch_device)
        return x_hat[0].cpu().numpy().astype(np.float32, copy=False)

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return self.encode_tiles([tile])[0]

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return self.decode_one(data, shape)


@register
class BandClusterCodec(StageInputMixin, BandClusterNetwork):
    info = CodecInfo(
        id="band-cluster",
        title="Band by band, one small Balle model (48 filters) per interval of correlated bands",
        paper="Mijares i Verdu et al., Hyperspectral remote sensing data compression with neural networks",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    # Five intervals as the paper's AVIRIS partition; intervals hold 1/32 to 0.4 of the bands.
    # Stage input: PLANES_PER_GROUP planes per interval, coded relative to their tile means (unit
    # variance already: no input gain).
    recipes = {q: {"arch": {"groups": 5, "N": 48, "min_frac": 1 / 32, "max_frac": 0.4, "center": True,
                            "input_gain": 1.0, "components": 5 * PLANES_PER_GROUP, "stage_step": STAGE_STEP},
                   "lmbda": lmbda, "batch": 2}
               for q, lmbda in ((1, 500.0), (2, 4000.0), (3, 30000.0))}

    @classmethod
    def build_network(cls, arch: dict):
        from engine.models.band_cluster import BandCluster

        return BandCluster(**{k: arch[k] for k in _MODEL_KEYS if k in arch})

    @classmethod
    def prepare_arch(cls, arch: dict, scenes) -> dict:
        """Partitions per band count from the mean band correlation of the training scenes with that count;
        for the stage input, those partition the bands into the clustered KLT's intervals, and the model's
        own partition gives each interval its planes."""
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
        k = int(arch.get("components", 0))
        if not k:
            return {**arch, "partitions": parts}
        if k % arch["groups"]:
            raise InputError(f"band-cluster components ({k}) must be a multiple of groups ({arch['groups']})")
        per = k // arch["groups"]
        return {**arch, "band_partitions": parts,
                "partitions": {str(k): [g * per for g in range(arch["groups"] + 1)]}}

    # --- the clustered KLT -------------------------------------------------------------------------------

    def band_bounds(self, bands: int) -> list[int]:
        from engine.band_partition import partition_for

        return partition_for(self.band_partitions, bands)

    def stage_bytes(self, tiles, bands: int) -> bytes:
        bounds = self.band_bounds(bands)
        return clustered_bytes(bounds, fit_clustered(tiles, bounds, self.components // self.model.groups,
                                                     self.model.stage_step))

    def stage_planes(self, blob: bytes, bands: int):
        bounds, stages = clustered_from_bytes(blob, bands)
        per = self.components // self.model.groups
        if len(stages) != self.model.groups or any(st is not None and st.k > per for st in stages):
            raise FormatError(f"clustered stage of {len(stages)} intervals does not fit these weights")
        return ClusteredPlanes(bounds, stages, per)

    @classmethod
    def scene_planes(cls, arch: dict, cube: np.ndarray, valid: np.ndarray):
        from engine.band_partition import partition_for

        bounds = partition_for(arch["band_partitions"], cube.shape[0])
        per = arch["components"] // arch["groups"]
        return ClusteredPlanes(bounds, fit_clustered([(cube, valid)], bounds, per, arch["stage_step"]), per)

    @classmethod
    def build_model(cls, arch: dict):
        model = super().build_model(arch)
        model.band_partitions = {str(k): list(v) for k, v in arch.get("band_partitions", {}).items()}
        return model

    @property
    def band_partitions(self) -> dict:
        return self.model.band_partitions
