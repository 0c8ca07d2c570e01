"""``band-cluster``: band-by-band coding with one small Balle model per interval of correlated bands.

After Mijares i Verdu et al.; the network is :mod:`engine.models.band_cluster`, the
partition search :mod:`engine.band_partition`. Training finds, per band count seen in the training
data (a sensor), the partition into ``groups`` intervals from the bands' mean correlation
(:meth:`BandClusterCodec.prepare_arch`) and stores it in the weights' architecture; a band count
without a stored partition uses the rescaled partition of the nearest stored band count.

Tile payload: :func:`engine.format.strings.pack_strings` with one group of strings per interval and
one string per band.

That is the raw-band variant (``--arch components=0``). The stage-input weights take a clustered KLT
instead (:mod:`engine.codecs.stage_input`): the partition of the bands is found as above, each interval
gets its own KLT fitted on the scene (stored in the file's scene section), and the interval's model codes
its ``components / groups`` component planes, as it codes bands in the raw variant. The shipped ones
(``_ARCH_BASED``) take the planes in the KLT's orthonormal units on a fixed Haar base
(:mod:`engine.models.stage_base`, arch key ``base_step``); the earlier ones took them whitened.
``equal_width`` (an ablation) puts equal-width intervals in place of the found partition.
"""

from __future__ import annotations

import numpy as np

from engine.codecs.base import CodecInfo, TileCodec
from engine.codecs.learned import LearnedCodecMixin, guarded_string, onednn_off, to_device
from engine.codecs.spatial import random_patches
from engine.codecs.stage_input import (STAGE_STEP, ClusteredPlanes, StageInputMixin, based_recipes, clustered_bytes,
                                       clustered_from_bytes, fit_clustered, plane_step)
from engine.errors import FormatError, InputError
from engine.format.strings import pack_strings, unpack_strings
from engine.registry import register

_MAX_STRINGS = 4096  # strings in one group: at most one per band


# The model's own arguments: a stage-input architecture adds components, stage_step, band_partitions.
_MODEL_KEYS = ("groups", "N", "partitions", "gain", "min_frac", "max_frac", "center", "input_gain",
               "base_step", "refine", "prior_scales")
PLANES_PER_GROUP = 4
# The shipped variant: orthonormal planes on a fixed Haar base, coded without tile means (the Haar DC
# subband carries them), the quantiser step of each quality's lmbda in place of the fixed gain.
_ARCH_BASED = {"groups": 5, "N": 48, "min_frac": 1 / 32, "max_frac": 0.4, "center": False,
               "components": 5 * PLANES_PER_GROUP, "stage_step": STAGE_STEP, "whiten": False,
               "equal_width": False, "refine": True}  # the last two: ablations (--arch KEY=VALUE)


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
    # lmbda: band MSE against bits per band sample (stage_input.plane_loss), as for s2cnet.
    recipes = based_recipes(_ARCH_BASED, batch=2)

    @classmethod
    def build_network(cls, arch: dict):
        from engine.models.band_cluster import BandCluster

        keys = {k: arch[k] for k in _MODEL_KEYS if k in arch}
        if not arch.get("components", 0):  # the raw bands (--arch components=0): no base
            keys.pop("base_step", None)
        planes = arch["components"] // arch["groups"] if keys.get("base_step") else 0
        return BandCluster(**keys, planes=planes)

    @classmethod
    def prepare_arch(cls, arch: dict, scenes) -> dict:
        """Partitions per band count from the mean band correlation of the training scenes with that count;
        for the stage input, those partition the bands into the clustered KLT's intervals, and the model's
        own partition gives each interval its planes. ``equal_width``: equal-width intervals instead (the
        ablation of the found partition)."""
        from engine.band_partition import band_correlation, find_partition, size_limits

        sums: dict[int, tuple[np.ndarray, int]] = {}
        scenes = list(scenes)
        for _name, x, valid in scenes:
            r = band_correlation(x, valid)
            total, count = sums.get(x.shape[0], (0.0, 0))
            sums[x.shape[0]] = (total + r, count + 1)
        parts = {}
        for bands, (total, count) in sorted(sums.items()):
            if arch.get("equal_width"):
                parts[str(bands)] = [round(g * bands / arch["groups"]) for g in range(arch["groups"] + 1)]
                continue
            lo, hi = size_limits(bands, arch["groups"], arch["min_frac"], arch["max_frac"])
            parts[str(bands)] = find_partition(total / count, arch["groups"], lo, hi)
        k = int(arch.get("components", 0))
        if not k:
            return {**arch, "partitions": parts}
        if k % arch["groups"]:
            raise InputError(f"band-cluster components ({k}) must be a multiple of groups ({arch['groups']})")
        per = k // arch["groups"]
        arch = {**arch, "band_partitions": parts,
                "partitions": {str(k): [g * per for g in range(arch["groups"] + 1)]}}
        if arch.get("base_step"):
            arch["prior_scales"] = cls.prior_scales(arch, scenes)
        return arch

    @classmethod
    def prior_scales(cls, arch: dict, scenes) -> list[list[float]]:
        """Per interval, the initial spread of each latent channel's density: 2 x the RMS of the base's
        latents (Haar subbands / step) over the training scenes, at least 0.1
        (engine.models.band_cluster.spread_densities)."""
        import torch

        from engine.models.band_cluster import BASE_LEVELS
        from engine.models.stage_base import HaarBlocks

        haar, s = HaarBlocks(1, BASE_LEVELS), 2 ** BASE_LEVELS
        total, count = np.zeros((arch["components"], s * s)), 0
        for _name, x, valid in scenes:
            w = cls.scene_planes(arch, x, valid).whiten(x)
            h, ww = w.shape[1] // s * s, w.shape[2] // s * s
            if not h or not ww:
                continue
            y = haar(torch.from_numpy(w[:, None, :h, :ww])).numpy() / arch["base_step"]  # (K, 16, h, w)
            total, count = total + (y.astype(np.float64) ** 2).sum((2, 3)), count + h * ww // (s * s)
        rms = np.sqrt(total / max(count, 1))
        per_group = np.maximum(2 * rms, 0.1).reshape(arch["groups"], -1)
        return [[float(f"{v:.3g}") for v in g] for g in per_group]

    # --- the clustered KLT -------------------------------------------------------------------------------

    def band_bounds(self, bands: int) -> list[int]:
        from engine.band_partition import partition_for

        return partition_for(self.band_partitions, bands)

    def stage_bytes(self, tiles, bands: int) -> bytes:
        bounds = self.band_bounds(bands)
        return clustered_bytes(bounds, fit_clustered(tiles, bounds, self.components // self.model.groups,
                                                     self.model.stage_step, self.model.base_step))

    def stage_planes(self, blob: bytes, bands: int):
        bounds, stages = clustered_from_bytes(blob, bands)
        per = self.components // self.model.groups
        if len(stages) != self.model.groups or any(st is not None and st.k > per for st in stages):
            raise FormatError(f"clustered stage of {len(stages)} intervals does not fit these weights")
        return ClusteredPlanes(bounds, stages, per, self.model.whiten)

    @classmethod
    def scene_planes(cls, arch: dict, cube: np.ndarray, valid: np.ndarray):
        from engine.band_partition import partition_for

        bounds = partition_for(arch["band_partitions"], cube.shape[0])
        per = arch["components"] // arch["groups"]
        return ClusteredPlanes(bounds, fit_clustered([(cube, valid)], bounds, per, arch["stage_step"],
                                                     plane_step(arch)), per,
                               arch.get("whiten", True))

    @classmethod
    def build_model(cls, arch: dict):
        model = super().build_model(arch)
        model.band_partitions = {str(k): list(v) for k, v in arch.get("band_partitions", {}).items()}
        return model

    @property
    def band_partitions(self) -> dict:
        return self.model.band_partitions
