"""``mdim-drf``: content-based compression with a multi-depth importance map and DRF convolution.

The model is :class:`engine.models.mdim.MDIMDRF`. What the tile payload holds (packed with
:func:`engine.format.strings.pack_strings`, latent shape (h, w) = tile size / 16):

1. the histogram of the importance levels (L u16 counts, which sum to h * w: at most 16384 for the
   largest tile the pipeline allows);
2. the level map (h * w symbols in 1..L), rANS-coded with the histogram as its distribution;
3. the latent symbols of the kept channels only (channel c is kept at a position whose level l has
   c < l * M / L), rANS-coded with the factorized prior's per-channel tables;
4. for weights built with ``center`` (the shipped ones), the tile's per-band means (float16), see
   :class:`engine.models.layers.TileMeans`.

The decoder reads the levels first, derives the mask from them, then knows exactly which symbols follow:
masked channels cost no bits at all and decode to zero. Nothing but the payload is needed.

Ablation of the paper (its Fig. 10) through the architecture: ``depths`` 3 (MDIM) or 1 (SDIM), ``drf``
on or off; the shipped weights are the full model (MDIM + DRF). Its BASE (no importance map) is
``bmshj2018-factorized`` q1-3, the same Balle transforms without the mask.

The shipped weights (``ARCH_BASED``) code the scene's 16 KLT planes in orthonormal units
(:mod:`engine.codecs.stage_input`) on a fixed 4 x 4 Haar base: the paper's g_a / g_s are refinements
around it (:mod:`engine.models.stage_base`), each quality's quantiser step comes from its lmbda, and a
level l keeps the 16 subbands of the l leading components at its position.
"""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine.codecs.base import CodecInfo
from engine.codecs.learned import guarded_string, onednn_off, to_device
from engine.codecs.spatial import SpatialCodec
from engine.codecs.stage_input import COMPONENTS, STAGE_STEP, StageInputMixin, based_recipes, plane_loss
from engine.errors import FormatError
from engine.format.strings import pack_counts, pack_strings, unpack_counts, unpack_strings
from engine.losses import masked_mse
from engine.registry import register

_PRECISION = 16  # compressai's rANS coder works with 16-bit cumulative frequencies

ARCH = {"N": 48, "M": 192, "adapter": 32, "levels": 16, "width": 64, "depths": 3, "drf": True,
        "window": 5, "kernel": 3, "gain": 16.0,
        "warmup": 300, "center": True, "input_gain": 20.0}
# On the spectral stage's planes: no band adapter, two stride-2 layers (/4) instead of four, no tile
# means (the planes are centred by the scene's KLT; their std is 1, no input gain).
ARCH_PLANES = {**ARCH, "center": False, "input_gain": 1.0, "components": COMPONENTS, "stage_step": STAGE_STEP,
               "down": 4}
# On a fixed Haar base (engine.models.stage_base), the shipped variant: planes in orthonormal units, M = 16
# subbands of each of the 16 planes at /4 (so a level keeps whole KLT components), gain 1 (the quantiser
# step that each quality's lmbda asks for sets the scale); ``refine`` false: the base alone (ablation).
ARCH_BASED = {**ARCH_PLANES, "M": 16 * COMPONENTS, "levels": COMPONENTS, "gain": 1.0, "whiten": False,
              "refine": True}
# The paper's ablation variants (constructible, trainable with a user's recipe; not shipped).
ABLATIONS = {"mdim": {**ARCH, "drf": False}, "sdim-drf": {**ARCH, "depths": 1},
             "sdim": {**ARCH, "depths": 1, "drf": False}}


def level_cdf(counts: np.ndarray) -> list[int]:
    """Quantised CDF for compressai's coder from level counts: every bin (and the escape bin) >= 1.

    Integer arithmetic only, so encoder and decoder derive the same table from the same counts.
    """
    counts = [int(c) for c in counts] + [0]  # the coder's escape bin, never used for valid levels
    total = sum(counts)
    spare = (1 << _PRECISION) - len(counts)
    freqs = [1 + (c * spare) // max(total, 1) for c in counts]
    freqs[int(np.argmax(counts))] += (1 << _PRECISION) - sum(freqs)
    return [0, *np.cumsum(freqs).tolist()]


def encode_levels(levels: np.ndarray, n_levels: int) -> tuple[bytes, bytes]:
    """(histogram bytes, rANS string) of integer levels in 1..n_levels."""
    from compressai.ans import RansEncoder

    symbols = levels.reshape(-1).astype(np.int64) - 1
    counts = np.bincount(symbols, minlength=n_levels)
    hist = pack_counts(counts.tolist())
    if np.count_nonzero(counts) == 1:
        # One level everywhere: the histogram says it all. (compressai's encoder also overflows its
        # output buffer on a single-symbol string: it reserves one word per symbol, the flush writes two.)
        return hist, b""
    cdf = level_cdf(counts)
    return hist, RansEncoder().encode_with_indexes(symbols.tolist(), [0] * symbols.size, [cdf], [len(cdf)], [0])


def decode_levels(hist: bytes, string: bytes, n_levels: int, count: int) -> np.ndarray:
    """Inverse of :func:`encode_levels` for ``count`` levels; FormatError on anything inconsistent."""
    from compressai.ans import RansDecoder

    if len(hist) != 2 * n_levels:
        raise FormatError(f"importance histogram of {len(hist)} bytes, {2 * n_levels} expected")
    counts = np.array(unpack_counts(hist, n_levels))
    if counts.sum() != count:
        raise FormatError(f"importance histogram counts {counts.sum()} levels, the tile has {count}")
    if np.count_nonzero(counts) == 1:
        if string:
            raise FormatError("importance map string present for a single-level map")
        return np.full(count, int(np.argmax(counts)) + 1, dtype=np.int64)
    cdf = level_cdf(counts)
    symbols = RansDecoder().decode_with_indexes(guarded_string(string, count), [0] * count, [cdf], [len(cdf)],
                                                [0])
    levels = np.asarray(symbols, dtype=np.int64) + 1
    if levels.size != count or levels.min() < 1 or levels.max() > n_levels:
        raise FormatError("corrupt importance map (levels out of range)")
    return levels


class MDIMNetwork(SpatialCodec):
    """The tile coding of the network (the bitstream above) on a tile's channels: bands or the stage's planes."""

    # --- bitstream -------------------------------------------------------------------------------------

    def _channel_tables(self, mask):
        """Channel index and prior median of each kept latent element (mask: (M, h, w) bool)."""
        import torch

        channels = torch.arange(self.model.M)[:, None, None].expand_as(mask)[mask]
        medians = self.model.entropy_bottleneck.quantiles[:, 0, 1].detach().cpu()
        return channels[None].int(), medians[channels][None]

    def encode_one(self, tile: np.ndarray) -> bytes:
        import torch
        from compressai.entropy_models import EntropyModel

        x = to_device(tile[None], self.torch_device)
        with torch.no_grad(), onednn_off(self.exact_cpu_kernels):
            x, m = self.model.centre(x)
            y, p = self.model.analyse(x)
            y, levels = y.cpu(), self.model.levels_of(p).cpu()
            mask = self.model.mask_of(levels)[0]
            hist, level_string = encode_levels(levels.numpy(), self.model.levels)
            index, means = self._channel_tables(mask)
            # The factorized prior's coder called on the kept elements only (its own compress codes all).
            y_string = EntropyModel.compress(self.model.entropy_bottleneck, y[0][mask][None], index, means)[0]
        return pack_strings(tuple(y.shape[2:]), [[hist], [level_string], [y_string], *self.model.means_groups(m)])

    def _decode_latent(self, data: bytes, shape: tuple[int, int, int]):
        """The tile's entropy-decoded latent (1, M, h, w), masked channels zero, on the CPU, and its
        per-band means (1, B) or None."""
        import torch

        from engine.models.layers import rans_decompress

        bands, rows, cols = shape
        latent_shape, groups = unpack_strings(data, 1)
        if latent_shape != self.model.latent_shape(bands, rows, cols):
            raise FormatError(f"tile latent shape {latent_shape} does not fit a {bands} x {rows} x {cols} tile")
        n = 4 if self.model.center else 3
        if len(groups) != n or any(len(g) != 1 for g in groups):
            raise FormatError(f"an mdim-drf tile of these weights holds {n} strings (histogram, levels, latent"
                              f"{', means' if n == 4 else ''})")
        self.model.check_means(groups, bands)
        (hist,), (level_string,), (y_string,) = groups[:3]
        h, w = latent_shape
        levels = decode_levels(hist, level_string, self.model.levels, h * w)
        mask = self.model.mask_of(torch.from_numpy(levels).reshape(1, 1, h, w))[0]
        index, means = self._channel_tables(mask)
        with torch.no_grad():
            values = rans_decompress(self.model.entropy_bottleneck, [guarded_string(y_string, index.shape[1])],
                                     index, torch.float32, means)
            y_hat = torch.zeros(1, self.model.M, h, w)
            y_hat[0][mask] = values[0]
        return y_hat, self.model.read_means(groups, bands)

    def decode_symbols(self, data: bytes, shape: tuple[int, int, int]) -> list[np.ndarray]:
        """The entropy-decoded latent: what must agree on every device."""
        return [self._decode_latent(data, shape)[0].numpy()]

    def decode_one(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        import torch

        y_hat, band_means = self._decode_latent(data, shape)
        with torch.no_grad(), onednn_off(self.exact_cpu_kernels):
            x_hat = self.model.synthesise(y_hat.to(self.torch_device), shape[0], shape[1:])
            x_hat = self.model.uncentre(x_hat, band_means)
        return x_hat[0].cpu().numpy().astype(np.float32, copy=False)

    # One tile per pass: each tile's level map keeps its own set of latent elements.
    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        return [self.encode_one(t) for t in tiles]

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        return [self.decode_one(data, shape) for data, shape in items]


@register
class MDIMDRFCodec(StageInputMixin, MDIMNetwork):
    info = CodecInfo(
        id="mdim-drf",
        title="MDIM-DRF: Balle transforms, latent channels masked by a multi-depth importance map (DRF convs)",
        paper="Pan, Gu, Chong, Guo, Content-based hyperspectral image compression using a multi-depth "
              "weighted map with dynamic receptive field convolution, IJIMAI 2022",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    # Trained from scratch at a low lmbda (20-200), the raw-band model's levels all fell to the floor (one
    # group of channels): channels masked early never learn to carry anything. On the Haar base, with the
    # 300-step warm-up, q2 trains from scratch (41 % of the channels kept) and q1 / q3 are fine-tuned from it.
    # The shipped weights take the spectral stage's planes on the Haar base (ARCH_BASED); --arch
    # components=0 the bands. lmbda: band MSE against bits per band sample (stage_input.plane_loss).
    recipes = based_recipes(ARCH_BASED, batch=4)
    patch: ClassVar[int] = 64  # 4 x 4 latent positions: room for the 5 x 5 DRF window to matter

    @classmethod
    def build_network(cls, arch: dict):
        from engine.models.mdim import MDIMDRF

        k = arch.get("components", 0)
        kept = {key: v for key, v in arch.items() if key not in ("components", "stage_step", "whiten")}
        if k:
            return MDIMDRF(**kept, channels=k)
        return MDIMDRF(**{key: v for key, v in kept.items() if key not in ("down", "base_step", "refine")})

    @classmethod
    def training_loss(cls, model, out, xb, vb, recipe, *extra):
        """lmbda * masked MSE + bits of the kept latent channels only (masked ones are never written);
        on the planes, the band MSE and bits per band sample (stage_input.plane_loss)."""
        import torch

        bits = (out["mask"] * -torch.log2(out["likelihoods"]["y"])).sum()
        kept = out["mask"].mean().item()
        if extra:
            loss, metrics = plane_loss(out, xb, vb, extra[0], recipe["lmbda"], bits)
            return loss, {**metrics, "kept": kept}
        mse = masked_mse(out["x_hat"], xb, vb)
        bpv = bits / xb.numel()
        return recipe["lmbda"] * mse + bpv, {"mse": mse.item(), "bpppc": bpv.item(), "kept": kept}

