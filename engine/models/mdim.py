"""MDIM-DRF (Pan et al. 2022): a Balle encoder/decoder whose latent channels are masked by an importance map.

Pieces, each usable on its own:

- :func:`moran_scores` / :func:`select_neighbours`: for every position, rank the positions of a
  ``window`` x ``window`` neighbourhood by their Moran's-index correlation with the centre and keep the
  ``kernel**2`` best (the dynamic receptive field).
- :class:`DRFConv2d`: a convolution over those selected neighbours, one kernel weight per rank.
- :class:`ImportanceNet`: the multi-depth importance map network (SE blocks, sub-maps at depths 1-3
  weighted 1/2, 1/4, 1/4; or single-depth), whose last three layers are DRF convolutions (or not).
- :class:`MDIMDRF`: analysis ``g_a`` (4 convs, 3 GDN) through a :class:`BandAdapter` (any band count),
  the importance map, the channel mask and the synthesis ``g_s``. Entropy coding of the masked latent and
  of the importance levels is the codec's business (:mod:`engine.codecs.mdim`).

The mask follows Li et al. (content-weighted compression, the paper's ref. [22]): the importance map
p in [0, 1] is quantised to a level l = ceil(L p) in 1..L per latent position, and the first l * M / L
of the M latent channels are kept there, the others are zero. In training, the channel groups below
the level are kept and the group at the threshold is scaled by frac(L p) (see
:meth:`MDIMDRF.training_mask`), so that rate and distortion both reach the importance network.

Moran's index as used here (eq. 5 of the paper, made numerically safe): for feature vectors x_p, x_q
over the C channels, m(p, q) = w_pq * mean_i(z_pi z_qi), with z the vector standardised over its
channels (Pearson correlation) and w_pq = 1 / distance(p, q). The paper's formula also divides by
sum_i x_pi x_qi, which changes sign and can vanish; it is left out.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

from engine.models.layers import BandAdapter, TileMeans, pad_to
from engine.models.stage_base import BasedAnalysis, BasedSynthesis

# The centre is always part of its own receptive field; positions outside the map never are (unless
# the map is smaller than the field, then they read zeros).
_CENTRE_SCORE = 1e4
_OUTSIDE_SCORE = -1e4


def _offsets(window: int) -> torch.Tensor:
    """(window**2, 2) offsets (dy, dx) of a window in F.unfold's (row-major) order."""
    r = window // 2
    dy, dx = torch.meshgrid(torch.arange(-r, r + 1), torch.arange(-r, r + 1), indexing="ij")
    return torch.stack([dy.reshape(-1), dx.reshape(-1)], 1)


def _unfold(x: torch.Tensor, window: int) -> torch.Tensor:
    """(N, C, H, W) -> (N, C, window**2, H, W), zero outside the map."""
    n, c, h, w = x.shape
    return F.unfold(x, window, padding=window // 2).reshape(n, c, window * window, h, w)


def moran_scores(x: torch.Tensor, window: int) -> torch.Tensor:
    """Moran's-index correlation of every position with each position of its window: (N, window**2, H, W).

    Inverse-distance-weighted Pearson correlation over the channels (see the module docstring). The centre
    scores highest, positions outside the map lowest; a tiny rank term breaks ties so that the order
    does not depend on how ``topk`` treats equal values.
    """
    n, c, h, w = x.shape
    xc = x - x.mean(1, keepdim=True)
    z = xc / xc.pow(2).mean(1, keepdim=True).sqrt().clamp_min(1e-6)
    corr = (_unfold(z, window) * z[:, :, None]).mean(1)
    off = _offsets(window).to(x)
    dist = off.pow(2).sum(1).sqrt()
    centre = dist == 0
    weight = torch.where(centre, torch.zeros_like(dist), 1.0 / dist.clamp_min(1.0))
    score = corr * weight[None, :, None, None]
    score = score - 1e-6 * torch.arange(window * window).to(x)[None, :, None, None]
    score = score + centre.to(x)[None, :, None, None] * _CENTRE_SCORE
    inside = _unfold(torch.ones(1, 1, h, w, dtype=x.dtype, device=x.device), window)[:, 0] > 0
    return torch.where(inside, score, torch.full_like(score, _OUTSIDE_SCORE))


def select_neighbours(x: torch.Tensor, window: int, kernel: int) -> torch.Tensor:
    """Indexes into the window (F.unfold order) of the ``kernel**2`` best-correlated positions, best first.

    Returns (N, kernel**2, H, W); index 0 is always the centre. The selection is discrete: no gradient.
    """
    if kernel * kernel > window * window:
        raise ValueError(f"cannot choose {kernel}x{kernel} neighbours from a {window}x{window} window")
    with torch.no_grad():
        return torch.topk(moran_scores(x.detach(), window), kernel * kernel, dim=1, sorted=True).indices


class DRFConv2d(nn.Module):
    """Dynamic receptive field convolution: a k x k kernel over each position's k*k selected neighbours.

    Kernel weight j applies to the neighbour of rank j (rank 0: the position itself). Stride 1, output
    the size of the input.
    """

    def __init__(self, cin: int, cout: int, kernel: int = 3, window: int = 5):
        super().__init__()
        self.kernel, self.window = kernel, window
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel * kernel))
        self.bias = nn.Parameter(torch.zeros(cout))
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))  # as nn.Conv2d initialises

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        idx = select_neighbours(x, self.window, self.kernel)  # (N, K, H, W)
        patches = _unfold(x, self.window)  # (N, C, W2, H, W)
        n, c = x.shape[:2]
        picked = torch.take_along_dim(patches, idx[:, None].expand(n, c, *idx.shape[1:]), dim=2)
        return torch.einsum("ock,nckhw->nohw", self.weight, picked) + self.bias[:, None, None]


class SEBlock(nn.Module):
    """Squeeze-and-excitation: channels re-weighted by a gate computed from their global means."""

    def __init__(self, channels: int, reduction: int = 4):
        super().__init__()
        hidden = max(channels // reduction, 4)
        self.gate = nn.Sequential(nn.Linear(channels, hidden), nn.ReLU(inplace=True),
                                  nn.Linear(hidden, channels), nn.Sigmoid())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x.mean((2, 3)))[:, :, None, None]


# Weights of the sub-maps of depths 1, 2, 3 (the paper's alpha_1..3); single-depth keeps the deepest.
DEPTH_WEIGHTS = {3: (0.5, 0.25, 0.25), 1: (0.0, 0.0, 1.0)}


class ImportanceNet(nn.Module):
    """Importance map in [0, 1] from the latent: a 1x1 stem, then three 3x3 layers (DRF or plain) + SE.

    Each depth m has a 1x1 head giving a sigmoid sub-map M_m; the map is sum_m alpha_m M_m.
    """

    def __init__(self, cin: int, width: int = 64, depths: int = 3, drf: bool = True, window: int = 5,
                 kernel: int = 3):
        super().__init__()
        if depths not in DEPTH_WEIGHTS:
            raise ValueError(f"depths must be 1 or 3, not {depths!r}")
        self.alphas = DEPTH_WEIGHTS[depths]
        # Normalised features keep the heads' logits moderate: saturated sigmoids (logits of +-100 were
        # measured without it) freeze the map at a constant.
        self.stem = nn.Sequential(nn.Conv2d(cin, width, 1), nn.GroupNorm(1, width), nn.ReLU(inplace=True))

        def layer():
            return DRFConv2d(width, width, kernel, window) if drf else nn.Conv2d(width, width, kernel,
                                                                                   padding=kernel // 2)

        self.layers = nn.ModuleList(layer() for _ in range(3))
        self.se = nn.ModuleList(SEBlock(width) for _ in range(3))
        self.heads = nn.ModuleList(nn.Conv2d(width, 1, 1) if a else nn.Identity() for a in self.alphas)
        # Start with every channel kept (p ~ 0.95): channels that are masked from the start never learn to
        # carry anything, so opening them never pays, and training stays at the floor level.
        for head in self.heads:
            if isinstance(head, nn.Conv2d):
                nn.init.constant_(head.bias, 3.0)

    def forward(self, y: torch.Tensor) -> torch.Tensor:
        h = self.stem(y)
        out = 0.0
        for layer, se, head, alpha in zip(self.layers, self.se, self.heads, self.alphas):
            h = se(F.relu(layer(h)))
            if alpha:
                out = out + alpha * torch.sigmoid(head(h))
        return out


class MDIMDRF(TileMeans, nn.Module):
    """Balle analysis/synthesis over all bands (band adapter), latent channels masked by importance levels.

    ``center`` / ``input_gain``: per-band tile means as side information (:class:`TileMeans`).

    ``base_step`` > 0 (the planes in orthonormal units, ``down`` 4, M = 16 x ``channels``): g_a and g_s
    refine a fixed 4 x 4 Haar base (:mod:`engine.models.stage_base`), y = haar(x) / step + alpha g_a(x).
    Latent channel c is subband c % 16 of plane c // 16, so with L = ``channels`` levels the importance
    level l keeps the l leading KLT components at a position. The step sets the quantiser's scale, so
    ``gain`` must be 1. ``refine`` False keeps alpha and beta at zero (the base alone: an ablation).
    """

    multiple = 16

    def __init__(self, N: int = 48, M: int = 192, adapter: int = 32, levels: int = 16, width: int = 64,
                 depths: int = 3, drf: bool = True, window: int = 5, kernel: int = 3, gain: float = 16.0,
                 warmup: int = 0, center: bool = False, input_gain: float = 1.0, channels: int = 0,
                 down: int = 16, base_step: float = 0.0, refine: bool = True):
        super().__init__()
        self.center, self.input_gain = center, input_gain
        if M % levels:
            raise ValueError(f"latent channels M={M} must be a multiple of the levels L={levels}")
        self.M, self.levels, self.gain, self.warmup = M, levels, gain, warmup
        # Training steps seen (saved with the weights, so fine-tuning continues past the warm-up).
        self.register_buffer("steps_seen", torch.zeros((), dtype=torch.long))
        # ``channels`` > 0: a fixed channel count (the spectral stage's planes) straight into g_a, no adapter.
        self.adapter = None if channels else BandAdapter(adapter)
        cin = channels or adapter
        if down == 16:
            self.g_a = nn.Sequential(conv(cin, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
            self.g_s = nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                                     deconv(N, N), GDN(N, inverse=True), deconv(N, cin))
        elif down == 4:
            # Two stride-2 layers: M latent values per 4 x 4 x channels inputs (at /16, 16 planes give 4096
            # values per position to M = 192 and the quality saturates).
            self.multiple = 4
            self.g_a = nn.Sequential(conv(cin, N), GDN(N), conv(N, N), GDN(N), conv(N, N, 5, 1), GDN(N),
                                     conv(N, M, 5, 1))
            self.g_s = nn.Sequential(deconv(M, N, 5, 1), GDN(N, inverse=True), conv(N, N, 5, 1),
                                     GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True), deconv(N, cin))
        else:
            raise ValueError(f"down must be 16 or 4, got {down}")
        if base_step:
            if not channels or down != 4 or M != 16 * channels or gain != 1.0:
                raise ValueError(f"base_step needs the planes, down=4, M=16*channels={16 * channels} and gain 1, "
                                 f"got channels={channels}, down={down}, M={M}, gain={gain}")
            self.g_a = BasedAnalysis(self.g_a, channels, 2, base_step, refine)
            self.g_s = BasedSynthesis(self.g_s, channels, 2, base_step, refine)
        self.importance = ImportanceNet(M, width, depths, drf, window, kernel)
        self.entropy_bottleneck = EntropyBottleneck(M)
        # Channel group of each latent channel: group g is kept where the level exceeds g.
        self.register_buffer("group", (torch.arange(M) // (M // levels)).float()[None, :, None, None],
                             persistent=False)

    def analyse(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Latent y (N, M, h, w) and importance map p (N, 1, h, w) of a tile batch."""
        # The fixed gain puts latents on the quantiser's scale from the start (training runs are short, as
        # for SSCNet); the importance network reads the latent before the gain.
        x = pad_to(x, self.multiple)
        y = self.g_a(x if self.adapter is None else self.adapter.encode(x))
        return self.gain * y, self.importance(y)

    def levels_of(self, p: torch.Tensor) -> torch.Tensor:
        """Importance levels ceil(L p) in 1..L (int64), what the bitstream carries."""
        return torch.ceil(p * self.levels).clamp(1, self.levels).long()

    def mask_of(self, levels: torch.Tensor) -> torch.Tensor:
        """Boolean channel mask (N, M, h, w) of integer levels (N, 1, h, w)."""
        return self.group.to(levels.device) < levels

    def training_mask(self, p: torch.Tensor) -> torch.Tensor:
        """The mask in training: groups below the level kept, the group at the threshold scaled by frac(L p).

        A hard mask forward (straight-through) does not work: where the decoder has adapted to a kept
        channel, the distortion's gradient with respect to its mask is ~0, so only the rate acts on the map
        and every level falls to the floor (measured, at lmbda 20 to 2000). With the fractional threshold
        group, distortion and rate trade off at the margin. The mask is > 0 exactly where the coder keeps a
        channel. A leak (a ramp over two levels, gradient only) lets training leave the floor level.
        """
        t = p * self.levels
        narrow = (t - self.group).clamp(0, 1)
        wide = ((t - self.group + 1) / 2).clamp(0, 1)
        return torch.where(self.group == 0, torch.ones_like(narrow), narrow + wide - wide.detach())

    def synthesise(self, y_hat: torch.Tensor, bands: int, size) -> torch.Tensor:
        x_hat = self.g_s(y_hat / self.gain)
        x_hat = x_hat if self.adapter is None else self.adapter.decode(x_hat, bands)
        return x_hat[..., :size[0], :size[1]]

    def forward(self, x: torch.Tensor) -> dict:
        x_in, m = self.centre(x)
        y, p = self.analyse(x_in)
        if self.training:
            self.steps_seen += 1
        if self.training and self.steps_seen <= self.warmup:
            # Warm-up with every channel kept: masked from the start, channels never learn to carry
            # anything, and the map falls to its floor (measured: kept 7 % after 300 steps, lmbda 20-2000).
            mask = torch.ones_like(y)
        else:
            mask = self.training_mask(p)
        y_hat, lk = self.entropy_bottleneck(y)
        x_hat = self.synthesise(y_hat * mask, x.shape[1], x.shape[-2:])
        x_hat = self.uncentre(x_hat, m)
        return {"x_hat": x_hat, "likelihoods": {"y": lk}, "mask": mask, "importance": p}

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def latent_shape(self, bands: int, rows: int, cols: int) -> tuple[int, int]:
        m = self.multiple
        return (-(-rows // m), -(-cols // m))
