"""Per-pixel spectral convolutional autoencoder with a factorized entropy model (1D-CAE family).

After Kuester et al. (1D-CAE, HySpecNet-11k baseline): each pixel's spectrum is a 1-D signal that
strided Conv1d + LeakyReLU blocks shrink 4x along the spectrum and a mirrored decoder restores. Two
changes make it a real codec for any sensor:

* the spectral feature map is resampled to a fixed length and a linear layer maps it to K latent
  values per pixel (the 1D-CAE's small latent, but with the same K for every band count), and each of
  the K values gets its own learned density in CompressAI's EntropyBottleneck;
* the latent is quantised and entropy coded, with the rate in the training loss (Balle et al. 2017),
  instead of the published float32 latent::

    x (N,1,B) -> conv/4 -> (N,W,B/4) -> resample (N,W,P) -> linear -> y (N,K,1) -> Q -> y_hat
    y_hat -> linear -> (N,W,P) -> resample (N,W,B/4) -> conv x4 -> x_hat (N,1,B)
                                            EntropyBottleneck(K): p(y_hat), rANS bits

One set of weights serves any band count (102 to 425 in our data).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from torch import nn


def _conv(cin: int, cout: int, k: int, stride: int = 1) -> nn.Conv1d:
    return nn.Conv1d(cin, cout, k, stride=stride, padding=k // 2, padding_mode="replicate")


class SpectralCAE(nn.Module):
    def __init__(self, latent: int = 16, width: int = 32, positions: int = 32, gain: float = 64.0,
                 depth: int = 2):
        super().__init__()
        self.latent = latent
        self.width = width
        self.positions = positions
        # Each stride-2 block halves the spectrum: depth 2 is cae1d (/4), deeper variants are cae1d-deep.
        self.factor = 2 ** depth
        # Inputs are ~[0, 1] and quantisation steps are 1: a fixed gain puts latents on the scale of the
        # quantiser from the first step (the network would otherwise spend most of training learning it).
        self.gain = gain
        act = nn.LeakyReLU(0.1)
        down = [_conv(1, width, 7, 2), act]
        for _ in range(depth - 1):
            down += [_conv(width, width, 5, 2), act]
        self.g_a_conv = nn.Sequential(*down, _conv(width, width, 5), act)
        self.g_a_fc = nn.Linear(width * positions, latent)
        self.g_s_fc = nn.Linear(latent, width * positions)
        up = [act, _conv(width, width, 5), act]
        for _ in range(depth - 1):
            up += [nn.ConvTranspose1d(width, width, 4, stride=2, padding=1), act]
        self.g_s_conv = nn.Sequential(*up, nn.ConvTranspose1d(width, 16, 4, stride=2, padding=1), act,
                                      _conv(16, 1, 5))
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        """g_a: (N,1,B) spectra -> (N, K, 1) latents."""
        bands = x.shape[-1]
        pad = -bands % self.factor
        if pad:
            x = F.pad(x, (0, pad), mode="replicate")
        h = F.interpolate(self.g_a_conv(x), size=self.positions, mode="linear", align_corners=True)
        return (self.gain * self.g_a_fc(h.flatten(1)))[..., None]

    def synthesis(self, y_hat: torch.Tensor, bands: int) -> torch.Tensor:
        """g_s: (N, K, 1) latents -> (N,1,B) spectra."""
        h = self.g_s_fc(y_hat[..., 0] / self.gain).reshape(-1, self.width, self.positions)
        h = F.interpolate(h, size=-(-bands // self.factor), mode="linear", align_corners=True)
        return self.g_s_conv(h)[..., :bands]

    def forward(self, x: torch.Tensor) -> dict:
        """Training pass with additive-noise quantisation. x: (N, 1, B) normalised spectra."""
        y_hat, likelihoods = self.entropy_bottleneck(self.analysis(x))
        return {"x_hat": self.synthesis(y_hat, x.shape[-1]), "likelihoods": likelihoods}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()
