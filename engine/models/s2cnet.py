"""S2C-Net (Sprengel, Fuchs, Demir): a scale-hyperprior 2D codec inside a spectral autoencoder.

The pixel-wise spectral autoencoder of :mod:`engine.models.spectral_cae` maps each pixel's spectrum to
K latent values; the K x rows x cols latent map is coded as a K-channel image by Balle et al.'s scale
hyperprior model (:class:`engine.models.spatial.Bmshj2018`), and the spectral decoder turns the decoded
map back into spectra::

    x (N,B,H,W) -> spectral encoder per pixel -> u (N,K,H,W) -> g_a -> y -> Q, hyperprior (z) -> y_hat
    y_hat -> g_s -> u_hat (N,K,H,W) -> spectral decoder per pixel -> x_hat (N,B,H,W)

Only y and z are written, and with ``center`` the per-channel means of the tile's latent map (float16,
:class:`engine.models.layers.TileMeans`): the map is coded relative to them. The spectral autoencoder's own entropy model is used in the first training
stage alone (pre-training it as a codec of its own, on single spectra (N,1,B)).

Where it differs from the hyperprior model of ``bmshj2018-hyperprior``: the analysis and synthesis
down-sample 4x, not 16x (two stride-2 layers with a stride-1 layer between). The latent map is already
16x fewer values than the cube; 16x spatial down-sampling on top leaves so few symbols that the rate
cannot exceed ~0.03 bpppc (what ``bmshj2018-hyperprior`` q1-3 measure), far below the rates compared.
"""

from __future__ import annotations

import torch
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

from engine.models.layers import Gain, chunked
from engine.models.spatial import CentredHyperprior
from engine.models.spectral_cae import SpectralCAE
from engine.models.stage_base import BasedAnalysis, BasedSynthesis

_PIXELS = 4096  # spectra per pass of the spectral network: bounds activation memory on large tiles


class S2CNet(CentredHyperprior):
    def __init__(self, latent: int = 16, width: int = 32, positions: int = 32, N: int = 48, M: int = 96,
                 gain: float = 16.0, center: bool = False, input_gain: float = 1.0):
        self._spatial(latent, N, M, gain)
        self.center, self.input_gain = center, input_gain
        self.spectral = SpectralCAE(latent, width, positions)

    def _spatial(self, latent: int, N: int, M: int, gain: float) -> None:
        """The hyperprior spatial codec of a ``latent``-channel map (y is /4, z is /16)."""
        super().__init__(N, M, hyperprior=True, channels=latent)
        self.latent = latent
        self.multiple = 16
        self.g_a = nn.Sequential(conv(latent, N), GDN(N), conv(N, N, 5, 1), GDN(N), conv(N, M), Gain(gain))
        # No inverse gain in g_s: its first layer is linear and learns the scale (the layer indexes stay
        # those of a plain model, so stage-1 files load).
        self.g_s = nn.Sequential(deconv(M, N), GDN(N, inverse=True), conv(N, N, 5, 1), GDN(N, inverse=True),
                                 deconv(N, latent))

    def strings_per_tile(self, bands: int) -> int:
        return 1  # the latent map is one multi-channel image, whatever the band count

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        """Spectra (N,B,H,W) -> latent map (N,K,H,W), before the spectral encoder's quantiser gain: values of
        order 1, where GDN is not saturated (on the quantiser's scale, ~60, it is)."""
        n, bands, h, w = x.shape
        s = x.permute(0, 2, 3, 1).reshape(-1, 1, bands)
        u = torch.cat([self.spectral.analysis(c) for c in s.split(_PIXELS)]) / self.spectral.gain
        return u[..., 0].reshape(n, h, w, self.latent).permute(0, 3, 1, 2)

    def _out(self, u: torch.Tensor, bands: int) -> torch.Tensor:
        """Latent map (N,K,H,W) -> spectra (N,B,H,W)."""
        n, k, h, w = u.shape
        y = u.permute(0, 2, 3, 1).reshape(-1, k, 1) * self.spectral.gain
        s = torch.cat([self.spectral.synthesis(c, bands) for c in y.split(_PIXELS)])
        return s[:, 0].reshape(n, h, w, bands).permute(0, 3, 1, 2)

    def forward(self, x: torch.Tensor) -> dict:
        """Single spectra (N,1,B): the spectral autoencoder alone (stage 1). Patches (N,B,H,W): the joint
        model, with the latent map ``u`` and its reconstruction ``u_hat`` for the mixed loss."""
        if x.dim() == 3:
            return self.spectral(x)
        h, w = x.shape[-2:]
        u = self._in(x)
        u_in, m = self.centre(u)
        y = self.g_a(self._pad(u_in))
        z_hat, z_lk = self.entropy_bottleneck(self.h_a(torch.abs(y)))
        y_hat, y_lk = self.gaussian_conditional(y, self.h_s(z_hat))
        u_hat = self.uncentre(self.g_s(y_hat)[..., :h, :w], m)
        return {"x_hat": self._out(u_hat, x.shape[1]), "likelihoods": {"y": y_lk, "z": z_lk},
                "u": u, "u_hat": u_hat}

    def _pad(self, u: torch.Tensor) -> torch.Tensor:
        h, w = u.shape[-2:]
        pad = (0, -w % self.multiple, 0, -h % self.multiple)
        return nn.functional.pad(u, pad, mode="replicate") if any(pad) else u

    def compress(self, x: torch.Tensor):
        if not self.center:
            return super().compress(x)
        # The means are those of the unpadded map, as in training.
        u_in, m = self.centre(self._in(x))
        groups, shape = self.compress_latent(chunked(self.g_a, self._pad(u_in)).cpu())
        return groups + self.means_groups(m), shape

    def means_bytes(self, bands: int) -> int:
        return 2 * self.latent

    def decompress(self, strings, shape, bands: int, size, device):
        # The parent's, with the map's means added back before the spectral decoder.
        y_hat = self.decode_symbols(strings, shape)[0]
        u_hat = self.uncentre(chunked(self.g_s, y_hat.to(device)), self.read_means(strings, bands))
        return self._out(u_hat, bands)[..., :size[0], :size[1]]


class PixelRefine(nn.Module):
    """x + a small per-pixel network of x (1x1 convolutions), its last layer zero: the identity at start."""

    def __init__(self, channels: int, width: int):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(channels, width, 1), nn.LeakyReLU(0.1), nn.Conv2d(width, channels, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.net(x)


class S2CNetPlanes(S2CNet):
    """S2C-Net on the spectral stage's whitened component planes (engine.codecs.stage_input).

    The scene's KLT is the linear spectral encoder; the paper's pixel-wise spectral autoencoder becomes
    a learned refinement on each side of the spatial codec (:class:`PixelRefine`, the identity at
    start), and the hyperprior spatial codec sits in its bottleneck as in the paper::

        planes w (N,K,H,W) -> u = w + e(w) -> g_a -> y -> Q, hyperprior (z) -> y_hat -> g_s -> u_hat
        u_hat -> w_hat = u_hat + d(u_hat)
    """

    def __init__(self, components: int = 16, width: int = 32, N: int = 48, M: int = 96, gain: float = 16.0,
                 down: int = 4, base_step: float = 0.0, refine: bool = True):
        self._spatial(components, N, M, gain)
        self.center, self.input_gain = False, 1.0
        if down == 2:
            # y at /2, z at /8: M latent values per 2 x 2 x K input values, so high rates are reachable
            # (at /4 the 16 K values per latent position were squeezed into M = 96 and PSNR saturated).
            self.multiple = 8
            self.g_a = nn.Sequential(conv(components, N), GDN(N), conv(N, N, 5, 1), GDN(N), conv(N, M, 5, 1),
                                     Gain(gain))
            self.g_s = nn.Sequential(deconv(M, N, 5, 1), GDN(N, inverse=True), conv(N, N, 5, 1),
                                     GDN(N, inverse=True), deconv(N, components))
        elif down != 4:
            raise ValueError(f"down must be 2 or 4, got {down}")
        if base_step:
            # The spatial codec refines a 4 x 4 Haar base (engine.models.stage_base): M = 16 K subbands.
            if down != 4 or M != 16 * components:
                raise ValueError(f"base_step needs down=4 and M=16*components={16 * components}, got {down}, {M}")
            # refine=False: the ablation without learned transforms (Haar base + hyperprior only).
            self.g_a = BasedAnalysis(self.g_a, components, 2, base_step, refine)
            self.g_s = BasedSynthesis(self.g_s, components, 2, base_step, refine)
        # Identity at start; refine=False keeps them there.
        self.refine_in = PixelRefine(components, width).requires_grad_(refine)
        self.refine_out = PixelRefine(components, width).requires_grad_(refine)

    def _in(self, x: torch.Tensor) -> torch.Tensor:
        return self.refine_in(x)

    def _out(self, u: torch.Tensor, bands: int) -> torch.Tensor:
        return self.refine_out(u)

    def forward(self, x: torch.Tensor) -> dict:
        if x.dim() != 4:
            raise ValueError("S2CNetPlanes codes component planes (N, K, H, W); it has no spectral stage")
        return super().forward(x)
