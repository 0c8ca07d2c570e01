"""A fixed invertible base under a seed codec's learned transforms (issue 15: the learned part must earn
its bits).

On the spectral stage's planes in orthonormal units (not whitened: a uniform quantiser on them allocates
bits like reverse water-filling, which the networks did not learn in CPU-minutes), a 2-D orthonormal Haar
transform on 2^L x 2^L blocks, divided by a quantiser step, is already a good analysis transform: on a
train crop of enmap_potsdam_a, 16 components, step 0.04 and the ideal zeroth-order entropy of each subband
give 50.1 dB at 0.09 bpppc (scripts/stage_base_headroom.py). So a paper's analysis g_a and
synthesis g_s become learned refinements around it, their output scaled by a per-channel factor that
starts at zero (the base alone at start)::

    y     = haar(x) / step + alpha * g_a(x)
    x_hat = haar^T(y_hat * step) + beta * g_s(y_hat * step)

Learning then goes to the entropy model (hyperprior, importance map, ...) and to what the refinements
can add; an ablation with the refinements left at zero says whether they earn their bits.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


def haar_matrix(levels: int) -> np.ndarray:
    """Orthonormal 1-D Haar transform of 2^levels samples (rows: the basis, coarsest first)."""
    h = np.ones((1, 1))
    for _ in range(levels):
        n = h.shape[0]
        low = np.kron(h, [1.0, 1.0])  # the coarser basis on twice the support
        high = np.kron(np.eye(n), [1.0, -1.0])
        h = np.vstack([low, high])
        h /= np.linalg.norm(h, axis=1, keepdims=True)
    return h


class HaarBlocks(nn.Module):
    """Each of ``channels`` planes in 2^L x 2^L blocks -> channels * 4^L subband planes at 1/2^L (and back)."""

    def __init__(self, channels: int, levels: int):
        super().__init__()
        self.channels, self.size = channels, 2 ** levels
        h = haar_matrix(levels)
        self.register_buffer("matrix", torch.tensor(np.kron(h, h), dtype=torch.float32), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, hh, ww = x.shape
        s = self.size
        blocks = nn.functional.pixel_unshuffle(x, s).reshape(n, c, s * s, hh // s, ww // s)
        return torch.einsum("ij,ncjhw->ncihw", self.matrix, blocks).reshape(n, c * s * s, hh // s, ww // s)

    def inverse(self, y: torch.Tensor) -> torch.Tensor:
        n, m, h, w = y.shape
        s = self.size
        blocks = torch.einsum("ji,ncjhw->ncihw", self.matrix, y.reshape(n, m // (s * s), s * s, h, w))
        return nn.functional.pixel_shuffle(blocks.reshape(n, m, h, w), s)


class _Refined(nn.Module):
    """A per-channel factor, zero at start, on a network's output; ``trainable`` False keeps it there (the
    ablation without a learned transform: the parameters stay, so the module is the same either way)."""

    def __init__(self, net: nn.Module, channels: int, trainable: bool):
        super().__init__()
        self.net = net
        self.scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.requires_grad_(trainable)

    def forward(self, t: torch.Tensor) -> torch.Tensor:
        return self.scale * self.net(t)


class BasedAnalysis(nn.Module):
    """y = haar(x) / step + (zero at start) * net(x); ``net`` maps channels -> channels * 4^L at 1/2^L.
    ``refine`` False: the refinement stays at zero in training (the base alone)."""

    def __init__(self, net: nn.Module, channels: int, levels: int, step: float, refine: bool = True):
        super().__init__()
        self.base, self.step = HaarBlocks(channels, levels), step
        self.refine = _Refined(net, channels * 4 ** levels, refine)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.base(x) / self.step + self.refine(x)


class BasedSynthesis(nn.Module):
    """x_hat = haar^T(y * step) + (zero at start) * net(y * step); ``net`` maps back to ``channels``
    (``refine`` as for :class:`BasedAnalysis`)."""

    def __init__(self, net: nn.Module, channels: int, levels: int, step: float, refine: bool = True):
        super().__init__()
        self.base, self.step = HaarBlocks(channels, levels), step
        self.refine = _Refined(net, channels, refine)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        u = y * self.step
        return self.base.inverse(u) + self.refine(u)
