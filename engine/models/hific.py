"""HiFiC (Mentzer et al. 2020) adapted to hyperspectral tiles: HiFiC_SE and HiFiC_3D.

Encoder E: a first convolution, four stride-2 convolutions, each followed by ChannelNorm and ReLU, and a
last convolution to the latent y. Generator G: a convolution from y, residual blocks, four stride-2
transposed convolutions and a last convolution, each with ChannelNorm. The probability model is the scale
hyperprior of :class:`engine.models.spatial.Bmshj2018` (whose entropy coding, CPU hyper-synthesis and
string layout are reused as they are). The conditional discriminator D sees an image and the quantised
latent y_hat (up-sampled to the image size), as in HiFiC.

Any band count:
- ``conv3d=False`` (HiFiC_SE): a :class:`BandAdapter` maps the B bands to ``adapter`` channels in front
  of E's first convolution, and back to B bands after G's last one.
- ``conv3d=True`` (HiFiC_3D): E's first and G's last convolutions are 3D, over (bands, rows, cols). E's
  3D output is average-pooled along the band axis to ``groups`` band groups and folded into channels;
  G's last features are unfolded to ``groups`` band groups, linearly interpolated to the B bands and
  convolved in 3D down to one channel.

``center=True``: per-band tile means as side information (an HSIC deviation from HiFiC, see
:class:`engine.models.layers.TileMeans`).

Squeeze-and-excitation (SE) blocks (reduction 2) sit after normalisation layers, placed by ``se``:
``"eg-norm"`` after every ChannelNorm of E and G (the paper's best), ``"e-norm"`` after every ChannelNorm
of E, ``"e-first"`` after E's first ChannelNorm only, ``"none"`` (HiFiC_opt / HiFiC_3D).

:class:`HiFiCPlanes`: the same E and G (two stride-2 stages instead of four) on the spectral stage's
component planes, as learned refinements of a fixed Haar base (the shipped weights).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from engine.models.layers import BandAdapter, Gain, pad_to
from engine.models.spatial import CentredHyperprior
from engine.models.stage_base import BasedAnalysis, BasedSynthesis

SE_PLACEMENTS = ("none", "e-first", "e-norm", "eg-norm")


class ChannelNorm(nn.Module):
    """HiFiC's ChannelNorm: each position normalised over channels, with a learned per-channel affine map.

    Unlike batch or instance norm it does not depend on the batch or the tile size.
    """

    def __init__(self, channels: int, eps: float = 1e-3):
        super().__init__()
        self.eps = eps
        self.gamma = nn.Parameter(torch.ones(1, channels, 1, 1))
        self.beta = nn.Parameter(torch.zeros(1, channels, 1, 1))

    def forward(self, x):
        mu = x.mean(1, keepdim=True)
        var = (x - mu).pow(2).mean(1, keepdim=True)
        return (x - mu) * torch.rsqrt(var + self.eps) * self.gamma + self.beta


class SqueezeExcite(nn.Module):
    """SE block (Hu et al.): global pooling, FC + ReLU (channels / reduction), FC + sigmoid, channel weights."""

    def __init__(self, channels: int, reduction: int = 2):
        super().__init__()
        self.fc1 = nn.Linear(channels, max(1, channels // reduction))
        self.fc2 = nn.Linear(max(1, channels // reduction), channels)

    def forward(self, x):
        # One sample at a time: a matrix product's rounding depends on how many rows it has, and a tile's
        # decode must not depend on how many tiles share the forward pass.
        v = x.mean((2, 3))
        w = torch.cat([torch.sigmoid(self.fc2(F.relu(self.fc1(v[i:i + 1])))) for i in range(v.shape[0])])
        return x * w[:, :, None, None]

    def l1(self) -> torch.Tensor:
        """The paper's l1 penalty on the FC weights (sparse channel importances)."""
        return self.fc1.weight.abs().sum() + self.fc2.weight.abs().sum()


def _norm(channels: int, se: bool) -> list[nn.Module]:
    return [ChannelNorm(channels)] + ([SqueezeExcite(channels)] if se else [])


class _Residual(nn.Module):
    def __init__(self, ch: int, se: bool):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), *_norm(ch, se), nn.ReLU(),
                                  nn.Conv2d(ch, ch, 3, padding=1), *_norm(ch, se))

    def forward(self, x):
        return x + self.body(x)


class _Head3d(nn.Module):
    """E's first convolution in 3D: (N, B, H, W) -> (N, channels * groups, H, W)."""

    def __init__(self, channels: int, groups: int, kernel: int = 3):
        super().__init__()
        self.groups = groups
        # Stride 2 along the bands: the output is pooled to a few band groups anyway (halves the cost).
        self.conv = nn.Conv3d(1, channels, kernel, stride=(2, 1, 1), padding=kernel // 2)

    def forward(self, x):
        v = self.conv(x[:, None])  # (N, C, B, H, W)
        v = F.adaptive_avg_pool3d(v, (self.groups, *v.shape[-2:]))
        return v.flatten(1, 2)


class _Tail3d(nn.Module):
    """G's last convolution in 3D: (N, channels * groups, H, W) -> (N, B, H, W) for any B (or for the fixed
    ``bands`` given at construction: the component planes)."""

    def __init__(self, channels: int, groups: int, kernel: int = 3, bands: int | None = None):
        super().__init__()
        self.channels, self.groups, self.bands = channels, groups, bands
        self.conv = nn.Conv3d(channels, 1, kernel, padding=kernel // 2)

    def forward(self, h, bands: int | None = None):
        bands = bands or self.bands
        n, _, hh, ww = h.shape
        v = h.reshape(n, self.channels, self.groups, hh, ww)
        # Linear interpolation along the band axis, group centres at the ends (align_corners).
        interp = BandAdapter._at(torch.eye(self.groups, device=h.device, dtype=h.dtype), bands)  # (G, B)
        v = torch.einsum("gb,ncghw->ncbhw", interp, v)
        return self.conv(v)[:, 0]


def _down(widths: list[int], se_first: bool, se_all: bool) -> list[nn.Module]:
    """E after its first convolution: norm, then a stride-2 convolution + norm + ReLU per further width."""
    enc: list[nn.Module] = [*_norm(widths[0], se_first), nn.ReLU()]
    for cin, cout in zip(widths, widths[1:]):
        enc += [nn.Conv2d(cin, cout, 3, stride=2, padding=1), *_norm(cout, se_all), nn.ReLU()]
    return enc


def _up(M: int, widths: list[int], blocks: int, se: bool) -> list[nn.Module]:
    """G up to its last convolution: from y, residual blocks, a transposed stride-2 convolution per width."""
    gen: list[nn.Module] = [nn.Conv2d(M, widths[-1], 3, padding=1), *_norm(widths[-1], se)]
    gen += [_Residual(widths[-1], se) for _ in range(blocks)]
    for cin, cout in zip(widths[::-1], widths[-2::-1]):
        gen += [nn.ConvTranspose2d(cin, cout, 3, stride=2, padding=1, output_padding=1), *_norm(cout, se),
                nn.ReLU()]
    return gen


class HiFiC(CentredHyperprior):
    """HiFiC_SE / HiFiC_3D codec model (see the module docstring); widths are arguments.

    ``widths``: E's channels after its first convolution and after each stride-2 convolution (5 values;
    G mirrors them). ``M``: latent channels; ``hyper``: hyperprior channels; ``blocks``: G's residual
    blocks. ``adapter``: band-adapter channels (2D variant); ``conv3d_channels`` x ``groups`` must equal
    ``widths[0]`` in the 3D variant. ``gain``: a fixed factor on y (and 1 / gain in G) that puts the
    latent on the quantiser's scale from the start (training runs are short here). ``center`` /
    ``input_gain``: per-band tile means as side information (:class:`TileMeans`).
    """

    def __init__(self, widths=(16, 24, 32, 48, 64), M: int = 64, hyper: int = 48, blocks: int = 2,
                 se: str = "eg-norm", conv3d: bool = False, adapter: int = 16, groups: int = 8,
                 conv3d_channels: int = 2, gain: float = 1.0, center: bool = False, input_gain: float = 1.0):
        if se not in SE_PLACEMENTS:
            raise ValueError(f"se placement {se!r}: choose one of {SE_PLACEMENTS}")
        if len(widths) != 5:
            raise ValueError("widths: 5 values (first convolution, then four stride-2 convolutions)")
        if conv3d and conv3d_channels * groups != widths[0]:
            raise ValueError("conv3d_channels * groups must equal widths[0]")
        # The parent builds the scale hyperprior (h_a, h_s, entropy models); its GDN transforms and band
        # adapter are replaced below.
        super().__init__(N=hyper, M=M, hyperprior=True, adapter=0 if conv3d else adapter)
        self.se_placement, self.conv3d = se, conv3d
        self.center, self.input_gain = center, input_gain
        e_first, e_all, g_all = se != "none", se in ("e-norm", "eg-norm"), se == "eg-norm"
        w = list(widths)

        enc: list[nn.Module] = []
        if conv3d:
            self.head3d = _Head3d(conv3d_channels, groups)
        else:
            enc.append(nn.Conv2d(adapter, w[0], 7, padding=3))
        enc += [*_down(w, e_first, e_all), nn.Conv2d(w[-1], M, 3, padding=1), Gain(gain)]
        self.g_a = nn.Sequential(*enc)

        gen: list[nn.Module] = [Gain(1 / gain), *_up(M, w, blocks, g_all)]
        if conv3d:
            self.tail3d = _Tail3d(conv3d_channels, groups)
        else:
            gen.append(nn.Conv2d(w[0], adapter, 7, padding=3))
        self.g_s = nn.Sequential(*gen)

    def strings_per_tile(self, bands: int) -> int:
        return 1  # one latent image per tile in both variants

    def _in(self, x):
        return self.head3d(x) if self.conv3d else self.adapter.encode(x)

    def _out(self, h, bands):
        return self.tail3d(h, bands) if self.conv3d else self.adapter.decode(h, bands)

    def forward(self, x: torch.Tensor) -> dict:
        """As the parent's, plus the quantised latent ``y_hat`` that conditions the discriminator."""
        h, w = x.shape[-2:]
        x_in, m = self.centre(x)
        y = self.g_a(self._in(pad_to(x_in, self.multiple)))
        z_hat, z_lk = self.entropy_bottleneck(self.h_a(torch.abs(y)))
        y_hat, y_lk = self.gaussian_conditional(y, self.h_s(z_hat))
        x_hat = self._out(self.g_s(y_hat), x.shape[1])[..., :h, :w]
        return {"x_hat": self.uncentre(x_hat, m), "likelihoods": {"y": y_lk, "z": z_lk}, "y_hat": y_hat}

    # With ``center``, a third group of strings holds each tile's means (float16 bytes, one per band).
    def compress(self, x: torch.Tensor):
        x_in, m = self.centre(x)
        groups, shape = super().compress(x_in)
        return groups + self.means_groups(m), shape

    def decompress(self, strings, shape, bands: int, size, device):
        x_hat = super().decompress(strings, shape, bands, size, device)
        return self.uncentre(x_hat, self.read_means(strings, bands))

    def se_l1(self) -> torch.Tensor:
        """Sum of the SE blocks' l1 penalties (zero without SE blocks)."""
        terms = [m.l1() for m in self.modules() if isinstance(m, SqueezeExcite)]
        return torch.stack(terms).sum() if terms else torch.zeros(())


class HiFiCPlanes(HiFiC):
    """HiFiC_SE / HiFiC_3D on the spectral stage's K component planes (engine.codecs.stage_input, in the
    KLT's orthonormal units), around a fixed Haar base (engine.models.stage_base)::

        planes x (N,K,H,W) -> y = haar(x) / step + alpha * E(x)        (K * 16 subbands at /4)
        -> Q, scale hyperprior (z at /16) -> y_hat
        -> x_hat = haar^T(y_hat * step) + beta * G(y_hat * step)       (alpha, beta zero at start)

    E: the first convolution (7 x 7, or HiFiC_3D's 3 x 3 x 3 head acting across the K planes as its bands),
    then two stride-2 convolutions (``widths``: 3 values) with ChannelNorm (+ SE), to the M = 16 K channels
    of the base; G mirrors it (residual blocks, two transposed stride-2 convolutions, 7 x 7 or the 3D
    tail back to K planes). No gain on y (the base's step sets the scale), no tile means (the planes are
    centred by the stage's mean). ``refine=False``: alpha and beta frozen at zero (the base and the learned
    entropy model alone, the ablation).
    """

    def __init__(self, components: int = 16, widths=(16, 32, 64), hyper: int = 48, blocks: int = 2,
                 se: str = "eg-norm", conv3d: bool = False, groups: int = 8, conv3d_channels: int = 2,
                 base_step: float = 0.04, refine: bool = True):
        if se not in SE_PLACEMENTS:
            raise ValueError(f"se placement {se!r}: choose one of {SE_PLACEMENTS}")
        if len(widths) != 3:
            raise ValueError("widths: 3 values (first convolution, then two stride-2 convolutions)")
        if conv3d and conv3d_channels * groups != widths[0]:
            raise ValueError("conv3d_channels * groups must equal widths[0]")
        M = 16 * components
        CentredHyperprior.__init__(self, N=hyper, M=M, hyperprior=True, channels=components)
        self.multiple = 16  # y at /4, z at /16
        self.se_placement, self.conv3d = se, conv3d
        self.center, self.input_gain = False, 1.0
        w = list(widths)
        first = _Head3d(conv3d_channels, groups) if conv3d else nn.Conv2d(components, w[0], 7, padding=3)
        last = _Tail3d(conv3d_channels, groups, bands=components) if conv3d else \
            nn.Conv2d(w[0], components, 7, padding=3)
        enc = [first, *_down(w, se != "none", se in ("e-norm", "eg-norm")), nn.Conv2d(w[-1], M, 3, padding=1)]
        gen = [*_up(M, w, blocks, se == "eg-norm"), last]
        self.g_a = BasedAnalysis(nn.Sequential(*enc), components, 2, base_step, refine)
        self.g_s = BasedSynthesis(nn.Sequential(*gen), components, 2, base_step, refine)

    def _in(self, x):
        return x

    def _out(self, h, bands):
        return h


class Discriminator(nn.Module):
    """HiFiC's conditional discriminator, small: image (through its own band adapter) + up-sampled y_hat.

    y_hat -> conv 3x3 (12) + LeakyReLU -> nearest up-sampling to the image size, concatenated with the
    image features; then 4x4 stride-2 convolutions with LeakyReLU and a 1x1 convolution to per-patch
    logits. Spectral normalisation on every convolution, as in HiFiC. ``forward`` also returns the
    intermediate features, used for the feature-matching perceptual term.
    """

    def __init__(self, latent: int, widths=(32, 64, 128), adapter: int = 16, cond: int = 12):
        super().__init__()
        sn = nn.utils.parametrizations.spectral_norm
        self.adapter = BandAdapter(adapter)
        self.cond = sn(nn.Conv2d(latent, cond, 3, padding=1))
        layers, cin = [], adapter + cond
        for cout in widths:
            layers.append(sn(nn.Conv2d(cin, cout, 4, stride=2, padding=1)))
            cin = cout
        self.layers = nn.ModuleList(layers)
        self.out = sn(nn.Conv2d(cin, 1, 1))

    def forward(self, x: torch.Tensor, y_hat: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        c = F.interpolate(F.leaky_relu(self.cond(y_hat), 0.2), size=x.shape[-2:], mode="nearest")
        h = torch.cat([self.adapter.encode(x), c], 1)
        feats = []
        for layer in self.layers:
            h = F.leaky_relu(layer(h), 0.2)
            feats.append(h)
        return self.out(h), feats


def _gaussian_taps(n: int, size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    size = min(size, n if n % 2 else n - 1)
    t = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-t ** 2 / (2 * sigma ** 2))
    return g / g.sum()


def _blur_matrix(n: int, device, dtype) -> torch.Tensor:
    """(n, n - taps + 1) matrix of the 'valid' Gaussian correlation along one axis."""
    g = _gaussian_taps(n)
    m = torch.zeros(n, n - g.numel() + 1)
    for i in range(m.shape[1]):
        m[i:i + g.numel(), i] = g
    return m.to(device=device, dtype=dtype)


def ssim(ref: torch.Tensor, rec: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """Mean SSIM over images and bands of (N, B, H, W) tensors, differentiable.

    The definition of :func:`engine.metrics.ssim` (11 x 11 Gaussian window, sigma 1.5, K1 = 0.01,
    K2 = 0.03, window positions fully inside the image); the separable blur is two matrix products
    (single-channel convolutions over hundreds of bands are slow on a CPU).
    """
    h, w = ref.shape[-2:]
    my_, mx_ = _blur_matrix(h, ref.device, ref.dtype), _blur_matrix(w, ref.device, ref.dtype)

    def blur(t):
        return my_.T @ (t @ mx_)

    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2
    mx, my = blur(ref), blur(rec)
    vx, vy, cxy = blur(ref * ref) - mx * mx, blur(rec * rec) - my * my, blur(ref * rec) - mx * my
    smap = (2 * mx * my + c1) * (2 * cxy + c2) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return smap.mean()


def feature_matching(fake: list[torch.Tensor], real: list[torch.Tensor]) -> torch.Tensor:
    """Mean L1 distance between discriminator features of the reconstruction and of the original."""
    return sum(F.l1_loss(f, r) for f, r in zip(fake, real)) / len(fake)

