"""``band-cluster`` network: one small Balle et al. (2017) model per interval of correlated bands.

Mijares i Verdu et al.: bands are coded one by one as single-channel images (so the cost is
linear in the number of bands), each by the model of the spectral interval the band lies in. Each model
is Balle's factorized-prior autoencoder with 48 filters: analysis 9x9 stride 4, 5x5 stride 2, 5x5 stride 2
with GDN between (/16), the mirrored synthesis with inverse GDN, and one learned density per latent
channel (EntropyBottleneck). The partition per band count lives in the architecture (see
:mod:`engine.band_partition`). ``center`` / ``input_gain``: each band is coded relative to its tile mean,
sent as float16 in a last group of strings (:class:`engine.models.layers.TileMeans`).
"""

from __future__ import annotations

import math

import torch
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from torch import nn

from engine.band_partition import partition_for
from engine.models.layers import TileMeans, chunked, pad_to

MULTIPLE = 16  # total down-sampling of the analysis transform


def _analysis(n: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(1, n, 9, 4, 4), GDN(n), nn.Conv2d(n, n, 5, 2, 2), GDN(n),
                         nn.Conv2d(n, n, 5, 2, 2))


def _synthesis(n: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(n, n, 5, 2, 2, 1), GDN(n, inverse=True),
                         nn.ConvTranspose2d(n, n, 5, 2, 2, 1), GDN(n, inverse=True),
                         nn.ConvTranspose2d(n, 1, 9, 4, 4, 3))


class BandCluster(TileMeans, nn.Module):
    def __init__(self, groups: int = 5, N: int = 48, partitions: dict | None = None, gain: float = 8.0,
                 min_frac: float = 1 / 32, max_frac: float = 0.4, center: bool = False, input_gain: float = 1.0):
        super().__init__()
        self.center, self.input_gain = center, input_gain
        self.groups, self.N, self.gain = groups, N, gain
        self.partitions = {str(k): list(v) for k, v in (partitions or {}).items()}
        self.g_a = nn.ModuleList(_analysis(N) for _ in range(groups))
        self.g_s = nn.ModuleList(_synthesis(N) for _ in range(groups))
        # Named like the other models' entropy model, so the codec keeps it on the CPU.
        self.entropy_bottleneck = nn.ModuleList(EntropyBottleneck(N) for _ in range(groups))

    def intervals(self, bands: int) -> list[tuple[int, int]]:
        b = partition_for(self.partitions, bands)
        return [(b[g], b[g + 1]) for g in range(self.groups)]

    def forward(self, x: torch.Tensor) -> dict:
        """Training pass (N, B, H, W): every band through its interval's model, additive-noise latents."""
        n, bands, h, w = x.shape
        x_in, m = self.centre(x)
        xp = pad_to(x_in, MULTIPLE)
        parts, lks = [], {}
        for g, (s, e) in enumerate(self.intervals(bands)):
            if e == s:
                continue
            xg = xp[:, s:e].reshape(-1, 1, *xp.shape[-2:])
            y_hat, lk = self.entropy_bottleneck[g](self.gain * self.g_a[g](xg))
            lks[f"g{g}"] = lk
            parts.append(self.g_s[g](y_hat / self.gain).reshape(n, e - s, *xp.shape[-2:]))
        x_hat = torch.cat(parts, 1)[..., :h, :w]
        return {"x_hat": self.uncentre(x_hat, m), "likelihoods": lks}

    def compress(self, x: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, int]]:
        """One tile (1, B, H, W) -> per interval, one rANS string per band (then the means' string with
        ``center``); the latent's spatial shape."""
        x_in, m = self.centre(x)
        xp = pad_to(x_in, MULTIPLE)
        groups, shape = [], self.latent_shape(*x.shape[-2:])
        for g, (s, e) in enumerate(self.intervals(x.shape[1])):
            if e == s:
                groups.append([])
                continue
            y = (self.gain * chunked(self.g_a[g], xp[0, s:e, None], 32)).cpu()
            groups.append(self.entropy_bottleneck[g].compress(y))
        return groups + self.means_groups(m), shape

    def decompress(self, groups: list[list[bytes]], shape, bands: int, size, device) -> torch.Tensor:
        parts = []
        for g, (s, e) in enumerate(self.intervals(bands)):
            if e == s:
                continue
            y_hat = self.entropy_bottleneck[g].decompress(groups[g], shape).to(device)
            parts.append(chunked(self.g_s[g], y_hat / self.gain, 32)[:, 0])
        x_hat = torch.cat(parts)[None, :, :size[0], :size[1]]
        return self.uncentre(x_hat, self.read_means(groups, bands))

    def strings_per_group(self, bands: int) -> list[int]:
        return [e - s for s, e in self.intervals(bands)] + ([1] if self.center else [])

    def symbols_per_string(self, shape: tuple[int, ...]) -> int:
        return self.N * math.prod(shape)

    @staticmethod
    def latent_shape(rows: int, cols: int) -> tuple[int, int]:
        return (-(-rows // MULTIPLE), -(-cols // MULTIPLE))

    def aux_loss(self) -> torch.Tensor:
        return sum(eb.loss() for eb in self.entropy_bottleneck)
