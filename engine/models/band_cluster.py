"""``band-cluster`` network: one small Balle et al. (2017) model per interval of correlated bands.

Mijares i Verdu et al.: bands are coded one by one as single-channel images (so the cost is
linear in the number of bands), each by the model of the spectral interval the band lies in. Each model
is Balle's factorized-prior autoencoder with 48 filters: analysis 9x9 stride 4, 5x5 stride 2, 5x5 stride 2
with GDN between (/16), the mirrored synthesis with inverse GDN, and one learned density per latent
channel (EntropyBottleneck). The partition per band count lives in the architecture (see
:mod:`engine.band_partition`). ``center`` / ``input_gain``: each band is coded relative to its tile mean,
sent as float16 in a last group of strings (:class:`engine.models.layers.TileMeans`).

``base_step`` (the stage-input weights on a fixed base, :mod:`engine.models.stage_base`): each plane of an
interval goes through a 4 x 4 Haar base divided by the quantiser step, 16 subbands at /4, and the paper's
analysis / synthesis become learned refinements around it (down-sampling 4 instead of 16, 16 latent
channels, the step in place of the fixed gain). The interval's planes are then coded together, one string
per interval, with one learned density per plane and subband: the KLT's planes of one interval differ in
variance by orders of magnitude, where the bands the paper's shared density was made for do not.
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from torch import nn

from engine.band_partition import partition_for
from engine.models.layers import TileMeans, chunked, pad_to
from engine.models.stage_base import BasedAnalysis, BasedSynthesis

MULTIPLE = 16  # total down-sampling of the analysis transform
BASE_LEVELS = 2  # Haar levels of the based variant: 16 subbands per plane at /4


def _analysis(n: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, n, 9, 4, 4), GDN(n), nn.Conv2d(n, n, 5, 2, 2), GDN(n),
                         nn.Conv2d(n, n, 5, 2, 2))


def _synthesis(n: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(n, n, 5, 2, 2, 1), GDN(n, inverse=True),
                         nn.ConvTranspose2d(n, n, 5, 2, 2, 1), GDN(n, inverse=True),
                         nn.ConvTranspose2d(n, 1, 9, 4, 4, 3))


def _based_analysis(n: int, step: float, refine: bool) -> BasedAnalysis:
    """The paper's analysis with down-sampling 4 and 16 outputs, refining a 4 x 4 Haar base."""
    net = nn.Sequential(nn.Conv2d(1, n, 9, 2, 4), GDN(n), nn.Conv2d(n, n, 5, 2, 2), GDN(n),
                        nn.Conv2d(n, 4 ** BASE_LEVELS, 5, 1, 2))
    return BasedAnalysis(net, 1, BASE_LEVELS, step, refine)


def _based_synthesis(n: int, step: float, refine: bool) -> BasedSynthesis:
    net = nn.Sequential(nn.Conv2d(4 ** BASE_LEVELS, n, 5, 1, 2), GDN(n, inverse=True),
                        nn.ConvTranspose2d(n, n, 5, 2, 2, 1), GDN(n, inverse=True),
                        nn.ConvTranspose2d(n, 1, 9, 2, 4, 1))
    return BasedSynthesis(net, 1, BASE_LEVELS, step, refine)


def spread_densities(eb: EntropyBottleneck, scales: list[float]) -> None:
    """Start each learned density of ``eb`` (and its quantiles) spread over its channel's ``scales`` entry.

    On the based variant the latents are in quantiser steps, from a few hundredths (fine subbands of the
    last planes) to about a hundred (the first plane's DC): from compressai's one initial spread (10) the
    densities and their quantiles move at the learning rate, so in CPU-minutes they stayed wide and every
    near-zero subband cost almost 3 bits per value."""
    with torch.no_grad():
        for c, scale in enumerate(scales):
            one = EntropyBottleneck(1, init_scale=float(scale), filters=eb.filters)
            for mine, init in zip(eb.parameters(), one.parameters()):
                mine[c] = init[0]


class BandCluster(TileMeans, nn.Module):
    def __init__(self, groups: int = 5, N: int = 48, partitions: dict | None = None, gain: float = 8.0,
                 min_frac: float = 1 / 32, max_frac: float = 0.4, center: bool = False, input_gain: float = 1.0,
                 base_step: float = 0.0, planes: int = 0, refine: bool = True,
                 prior_scales: list[list[float]] | None = None):
        """``base_step``: the based variant, whose intervals hold ``planes`` planes each; ``refine``
        False keeps its refinements at zero (an ablation: the base and the learned densities alone).
        ``prior_scales``: per interval, the initial spread of each density (see :func:`spread_densities`)."""
        super().__init__()
        self.center, self.input_gain = center, input_gain
        self.groups, self.N = groups, N
        self.partitions = {str(k): list(v) for k, v in (partitions or {}).items()}
        if base_step:
            if planes < 1:
                raise ValueError("the based band-cluster needs its planes per interval")
            self.gain, self.channels, self.multiple, self.per_string = 1.0, 4 ** BASE_LEVELS, 2 ** BASE_LEVELS, planes
            self.g_a = nn.ModuleList(_based_analysis(N, base_step, refine) for _ in range(groups))
            self.g_s = nn.ModuleList(_based_synthesis(N, base_step, refine) for _ in range(groups))
        else:
            self.gain, self.channels, self.multiple, self.per_string = gain, N, MULTIPLE, 1
            self.g_a = nn.ModuleList(_analysis(N) for _ in range(groups))
            self.g_s = nn.ModuleList(_synthesis(N) for _ in range(groups))
        # Named like the other models' entropy model, so the codec keeps it on the CPU. One density per
        # latent channel of each of the ``per_string`` images coded in one string.
        self.entropy_bottleneck = nn.ModuleList(EntropyBottleneck(self.channels * self.per_string)
                                                for _ in range(groups))
        for eb, scales in zip(self.entropy_bottleneck, prior_scales or ()):
            spread_densities(eb, scales)

    def intervals(self, bands: int) -> list[tuple[int, int]]:
        b = partition_for(self.partitions, bands)
        return [(b[g], b[g + 1]) for g in range(self.groups)]

    def forward(self, x: torch.Tensor) -> dict:
        """Training pass (N, B, H, W): every band through its interval's model, additive-noise latents."""
        n, bands, h, w = x.shape
        x_in, m = self.centre(x)
        xp = pad_to(x_in, self.multiple)
        parts, lks = [], {}
        for g, (s, e) in enumerate(self.intervals(bands)):
            if e == s:
                continue
            xg = xp[:, s:e].reshape(-1, 1, *xp.shape[-2:])
            y = self.gain * self.g_a[g](xg)
            y_hat, lk = self.entropy_bottleneck[g](self.joined(y))
            lks[f"g{g}"] = lk
            parts.append(self.g_s[g](self.split(y_hat) / self.gain).reshape(n, e - s, *xp.shape[-2:]))
        x_hat = torch.cat(parts, 1)[..., :h, :w]
        return {"x_hat": self.uncentre(x_hat, m), "likelihoods": lks}

    def compress(self, x: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, int]]:
        """One tile (1, B, H, W) -> per interval, one rANS string per band (the based variant: one for all
        its planes), then the means' string with ``center``; the latent's spatial shape."""
        x_in, m = self.centre(x)
        xp = pad_to(x_in, self.multiple)
        groups, shape = [], self.latent_shape(*x.shape[-2:])
        for g, (s, e) in enumerate(self.intervals(x.shape[1])):
            if e == s:
                groups.append([])
                continue
            y = (self.gain * chunked(self.g_a[g], xp[0, s:e, None], 32)).cpu()
            groups.append(self.entropy_bottleneck[g].compress(self.joined(y)))
        return groups + self.means_groups(m), shape

    def decompress(self, groups: list[list[bytes]], shape, bands: int, size, device) -> torch.Tensor:
        parts = []
        for g, (s, e) in enumerate(self.intervals(bands)):
            if e == s:
                continue
            y_hat = self.split(self.entropy_bottleneck[g].decompress(groups[g], shape).to(device))
            parts.append(chunked(self.g_s[g], y_hat / self.gain, 32)[:, 0])
        x_hat = torch.cat(parts)[None, :, :size[0], :size[1]]
        return self.uncentre(x_hat, self.read_means(groups, bands))

    def joined(self, y: torch.Tensor) -> torch.Tensor:
        """Latents of single images (n * per_string, C, h, w) -> the strings' (n, per_string * C, h, w)."""
        return y if self.per_string == 1 else y.reshape(-1, self.per_string * self.channels, *y.shape[-2:])

    def split(self, y: torch.Tensor) -> torch.Tensor:
        return y if self.per_string == 1 else y.reshape(-1, self.channels, *y.shape[-2:])

    def strings_per_group(self, bands: int) -> list[int]:
        return [-(-(e - s) // self.per_string) for s, e in self.intervals(bands)] + ([1] if self.center else [])

    def symbols_per_string(self, shape: tuple[int, ...]) -> int:
        return self.channels * self.per_string * math.prod(shape)

    def latent_shape(self, rows: int, cols: int) -> tuple[int, int]:
        return (-(-rows // self.multiple), -(-cols // self.multiple))

    def aux_loss(self) -> torch.Tensor:
        return sum(eb.loss() for eb in self.entropy_bottleneck)
