"""Spatial and spatio-spectral autoencoders for whole tiles: SSCNet, 3D-CAE and Balle et al.'s codecs.

All of them take a normalised tile batch (N, B, H, W) for any band count B and code a quantised latent
with CompressAI's entropy models; ``compress``/``decompress`` return/accept rANS strings. Also here:
:class:`Bmshj2018` and :class:`CentredHyperprior` (its scale hyperprior with tile means), the parents of
the s2cnet and HiFiC models. Parts shared with other models live in :mod:`engine.models.layers`.

Any band count: a 2D network needs a fixed channel count, so the 2D models start and end with a
:class:`BandAdapter`, a 1x1 spectral projection whose weights are curves over the normalised band
position (``knots`` samples, linearly interpolated to the B bands at hand). With knots >= B every band
keeps its own weight, so nothing is lost by resampling for the band counts of our data (102 to 425). The
3D-CAE is convolutional along the spectrum and needs no adapter.

The models differ from the published HySpecNet-11k baselines where a real codec must: latents are
quantised and entropy coded (the papers keep float32 latents), and the rate is part of the loss.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from compressai.entropy_models import EntropyBottleneck, GaussianConditional
from compressai.layers import GDN
from compressai.models.utils import conv, deconv
from torch import nn

from engine.models.layers import BandAdapter, TileMeans, chunked, pad_to, rans_decompress

# Scale table of CompressAI's hyperprior models (log-spaced from 0.11 to 256).
_SCALES = torch.exp(torch.linspace(torch.log(torch.tensor(0.11)), torch.log(torch.tensor(256.0)), 64)).tolist()


class _FactorizedLatent(nn.Module):
    """Shared by models whose latent y is coded with a factorized prior (EntropyBottleneck)."""

    multiple = 1

    def analysis(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def synthesis(self, y_hat: torch.Tensor, bands: int) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        y_hat, lk = self.entropy_bottleneck(self.analysis(pad_to(x, self.multiple)))
        x_hat = self.synthesis(y_hat, x.shape[1])[..., :h, :w]
        return {"x_hat": x_hat, "likelihoods": {"y": lk}}

    def compress(self, x: torch.Tensor) -> tuple[list[bytes], tuple[int, ...]]:
        y = self.analysis(pad_to(x, self.multiple)).cpu()
        return [self.entropy_bottleneck.compress(y)], tuple(y.shape[2:])

    def decode_symbols(self, strings: list[list[bytes]], shape: tuple[int, ...]) -> list[torch.Tensor]:
        """Entropy-decoded latents (on the CPU)."""
        return [self.entropy_bottleneck.decompress(strings[0], shape)]

    def decompress(self, strings: list[list[bytes]], shape: tuple[int, ...], bands: int, size, device):
        (y_hat,) = self.decode_symbols(strings, shape)
        return self.synthesis(y_hat.to(device), bands)[..., :size[0], :size[1]]

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def symbols_per_string(self, shape: tuple[int, ...]) -> list[int]:
        """Latent symbols in one string of each group, for a latent of spatial ``shape``."""
        return [self.entropy_bottleneck.channels * math.prod(shape)]

    def strings_per_tile(self, bands: int) -> int:
        """rANS strings per tile in each group: one per image the model codes."""
        return 1

    def latent_shape(self, bands: int, rows: int, cols: int) -> tuple[int, ...]:
        """The coded latent's spatial shape for a tile (what compress writes)."""
        m = self.multiple
        return (-(-rows // m), -(-cols // m))


class SSCNet(_FactorizedLatent):
    """SSCNet (La Grassa et al.): conv 3x3 + PReLU + max-pooling down (/8), three stride-2 transposed convs up."""

    multiple = 8

    def __init__(self, latent: int = 16, width: int = 64, adapter: int = 64, gain: float = 16.0):
        super().__init__()
        self.gain = gain
        self.adapter = BandAdapter(adapter)
        down = []
        cin = adapter
        for _ in range(3):
            down += [nn.Conv2d(cin, width, 3, padding=1), nn.PReLU(width), nn.MaxPool2d(2)]
            cin = width
        self.g_a = nn.Sequential(*down, nn.Conv2d(width, latent, 3, padding=1))
        self.g_s = nn.Sequential(
            nn.Conv2d(latent, width, 3, padding=1), nn.PReLU(width),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.PReLU(width),
            nn.ConvTranspose2d(width, width, 4, 2, 1), nn.PReLU(width),
            nn.ConvTranspose2d(width, adapter, 4, 2, 1),
        )
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def analysis(self, x):
        # A fixed gain puts latents on the quantiser's scale early (training runs are short here).
        return self.gain * self.g_a(self.adapter.encode(x))

    def synthesis(self, y_hat, bands):
        return self.adapter.decode(self.g_s(y_hat / self.gain), bands)


class _Res3d(nn.Module):
    def __init__(self, ch: int):
        super().__init__()
        self.body = nn.Sequential(nn.Conv3d(ch, ch, 3, padding=1), nn.BatchNorm3d(ch), nn.LeakyReLU(0.1),
                                  nn.Conv3d(ch, ch, 3, padding=1), nn.BatchNorm3d(ch))

    def forward(self, x):
        return F.leaky_relu(x + self.body(x), 0.1)


class CAE3D(_FactorizedLatent):
    """3D-CAE (Chong et al.): strided 3D convs with batch norm and LeakyReLU, residual 3D blocks.

    The tile is one volume (1, B, H, W); the latent is (L, B/4, H/8, W/8), one density per latent
    channel shared along the spectrum.
    """

    multiple = 8

    def __init__(self, latent: int = 8, width: int = 16, gain: float = 16.0):
        super().__init__()
        self.gain = gain

        def down(cin, cout, stride):
            return [nn.Conv3d(cin, cout, 3, stride=stride, padding=1), nn.BatchNorm3d(cout), nn.LeakyReLU(0.1)]

        def up(cin, cout, stride):
            k = tuple(4 if s == 2 else 3 for s in stride)
            return [nn.ConvTranspose3d(cin, cout, k, stride=stride, padding=1), nn.BatchNorm3d(cout),
                    nn.LeakyReLU(0.1)]

        # Residual blocks sit at the reduced resolutions: full-resolution 3D convolutions cost minutes
        # per tile on a CPU.
        self.g_a = nn.Sequential(*down(1, width, (2, 2, 2)), *down(width, width, (2, 2, 2)), _Res3d(width),
                                 *down(width, width, (1, 2, 2)), _Res3d(width),
                                 nn.Conv3d(width, latent, 3, padding=1))
        self.g_s = nn.Sequential(nn.Conv3d(latent, width, 3, padding=1), nn.LeakyReLU(0.1), _Res3d(width),
                                 *up(width, width, (1, 2, 2)), _Res3d(width), *up(width, width, (2, 2, 2)),
                                 nn.ConvTranspose3d(width, 1, 4, stride=2, padding=1))
        self.entropy_bottleneck = EntropyBottleneck(latent)

    def analysis(self, x):
        bands = x.shape[1]
        pad = -bands % 4
        v = x[:, None]
        if pad:
            v = F.pad(v, (0, 0, 0, 0, 0, pad), mode="replicate")
        y = self.gain * self.g_a(v)  # (N, L, B/4, H/8, W/8)
        n, c, d, hh, ww = y.shape
        # Fold the spectral axis into the spatial one so CompressAI sees a 4-D latent.
        return y.reshape(n, c, d * hh, ww)

    def latent_shape(self, bands, rows, cols):
        rows_, cols_ = super().latent_shape(bands, rows, cols)
        return (-(-bands // 4) * rows_, cols_)  # the spectral axis is folded into the rows

    def synthesis(self, y_hat, bands):
        d = -(-bands // 4)
        n, c, dh, ww = y_hat.shape
        v = self.g_s(y_hat.reshape(n, c, d, dh // d, ww) / self.gain)
        return v[:, 0, :bands]


class Bmshj2018(nn.Module):
    """Balle et al. 2017/2018 (CompressAI ``bmshj2018-factorized`` / ``-hyperprior``) for hyperspectral tiles.

    ``channels_in`` is 1 for the band-by-band mode (each band an image through one shared model); for
    the all-bands mode a :class:`BandAdapter` maps the B bands to ``adapter`` input channels. Subclasses
    whose input always has the same channel count (``s2cnet``'s spectral latent) give ``channels`` and
    override ``_in`` / ``_out``.
    """

    def __init__(self, N: int = 64, M: int = 96, hyperprior: bool = False, adapter: int = 0, channels: int = 1):
        super().__init__()
        cin = adapter or channels
        self.adapter = BandAdapter(adapter) if adapter else None
        self.hyperprior = hyperprior
        self.multiple = 64 if hyperprior else 16
        self.g_a = nn.Sequential(conv(cin, N), GDN(N), conv(N, N), GDN(N), conv(N, N), GDN(N), conv(N, M))
        self.g_s = nn.Sequential(deconv(M, N), GDN(N, inverse=True), deconv(N, N), GDN(N, inverse=True),
                                 deconv(N, N), GDN(N, inverse=True), deconv(N, cin))
        if hyperprior:
            self.h_a = nn.Sequential(conv(M, N, 3, 1), nn.ReLU(inplace=True), conv(N, N), nn.ReLU(inplace=True),
                                     conv(N, N))
            self.h_s = nn.Sequential(deconv(N, N), nn.ReLU(inplace=True), deconv(N, N), nn.ReLU(inplace=True),
                                     conv(N, M, 3, 1), nn.ReLU(inplace=True))
            self.entropy_bottleneck = EntropyBottleneck(N)
            self.gaussian_conditional = GaussianConditional(None)
        else:
            self.entropy_bottleneck = EntropyBottleneck(M)

    # The band-by-band mode treats bands as a batch of single-channel images.
    def _in(self, x):
        if self.adapter is not None:
            return self.adapter.encode(x)
        return x.reshape(-1, 1, *x.shape[-2:])

    def _out(self, h, bands):
        if self.adapter is not None:
            return self.adapter.decode(h, bands)
        return h.reshape(-1, bands, *h.shape[-2:])

    def forward(self, x: torch.Tensor) -> dict:
        h, w = x.shape[-2:]
        y = self.g_a(self._in(pad_to(x, self.multiple)))
        if self.hyperprior:
            z_hat, z_lk = self.entropy_bottleneck(self.h_a(torch.abs(y)))
            y_hat, y_lk = self.gaussian_conditional(y, self.h_s(z_hat))
            lks = {"y": y_lk, "z": z_lk}
        else:
            y_hat, y_lk = self.entropy_bottleneck(y)
            lks = {"y": y_lk}
        return {"x_hat": self._out(self.g_s(y_hat), x.shape[1])[..., :h, :w], "likelihoods": lks}

    def compress(self, x: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, ...]]:
        return self.compress_latent(chunked(self.g_a, self._in(pad_to(x, self.multiple))).cpu())

    def compress_latent(self, y: torch.Tensor) -> tuple[list[list[bytes]], tuple[int, ...]]:
        """The rANS strings of a latent y (CPU) and the coded latent shape."""
        if not self.hyperprior:
            return [self.entropy_bottleneck.compress(y)], tuple(y.shape[2:])
        # Entropy parameters (scales) are computed on the CPU from the decoded z: the decoder derives
        # exactly the same indexes whatever device ran the transforms.
        z = self.h_a_cpu(torch.abs(y))
        z_strings = self.entropy_bottleneck.compress(z)
        z_hat = self.entropy_bottleneck.decompress(z_strings, z.shape[2:])
        indexes = self.scale_indexes(self.h_s_cpu(z_hat))
        return [self.gaussian_conditional.compress(y, indexes), z_strings], tuple(z.shape[2:])

    def decode_symbols(self, strings, shape) -> list[torch.Tensor]:
        """Entropy-decoded latents on the CPU: [y] or [y, z]; the scales come from z on the CPU."""
        if not self.hyperprior:
            return [self.entropy_bottleneck.decompress(strings[0], shape)]
        z_hat = self.entropy_bottleneck.decompress(strings[1], shape)
        indexes = self.scale_indexes(self.h_s_cpu(z_hat))
        return [rans_decompress(self.gaussian_conditional, strings[0], indexes, z_hat.dtype), z_hat]

    def scale_indexes(self, scales: torch.Tensor) -> torch.Tensor:
        """The Gaussian conditional's table index of each scale: ``build_indexes``'s result, found by one
        binary search instead of its pass over the whole tensor per table entry (63 passes: 20 ms of a
        hific-se tile's 100 ms decode). Index = how many of the table's first 63 scales are below the
        scale, in float32 as compressai compares them (NaN: the last index, as there)."""
        gc = self.gaussian_conditional
        return torch.searchsorted(gc.scale_table[:-1], gc.lower_bound_scale(scales).contiguous()).int()

    def decompress(self, strings, shape, bands: int, size, device):
        y_hat = self.decode_symbols(strings, shape)[0]
        return self._out(chunked(self.g_s, y_hat.to(device)), bands)[..., :size[0], :size[1]]

    # The hyper-transforms are tiny; they always run on the CPU (see compress).
    def h_a_cpu(self, y):
        return self._on_cpu(self.h_a, y)

    def h_s_cpu(self, z_hat):
        return self._on_cpu(self.h_s, z_hat)

    @staticmethod
    def _on_cpu(net, t):
        p = next(net.parameters())
        return net(t.to(p.device)).cpu()

    def aux_loss(self) -> torch.Tensor:
        return self.entropy_bottleneck.loss()

    def strings_per_tile(self, bands: int) -> int:
        """rANS strings per tile in each group: one, or one per band in the band-by-band mode."""
        return 1 if self.adapter is not None else bands

    def latent_shape(self, bands: int, rows: int, cols: int) -> tuple[int, ...]:
        """Spatial shape of y (factorized) or z (hyperprior), as written by compress."""
        m = self.multiple
        return (-(-rows // m) * m // m, -(-cols // m) * m // m) if self.hyperprior else \
            (-(-rows // m) * m // 16, -(-cols // m) * m // 16)

    def symbols_per_string(self, shape: tuple[int, ...]) -> list[int]:
        """Latent symbols in one string of each group ([y] or [y, z]), for the coded latent ``shape``."""
        n = math.prod(shape)
        if not self.hyperprior:
            return [self.entropy_bottleneck.channels * n]
        m = self.h_s[-2].out_channels
        return [m * 16 * n, self.entropy_bottleneck.channels * n]  # y is 4 x 4 times larger than z

    def update_tables(self) -> None:
        if self.hyperprior:
            self.gaussian_conditional.update_scale_table(_SCALES, force=True)


class CentredHyperprior(TileMeans, Bmshj2018):
    """A scale-hyperprior model whose tiles may carry their means (``center``, :class:`TileMeans`).

    The means are a third group of strings, one per tile, after y's and z's; they are not entropy coded
    (``decode_symbols`` reads y's and z's groups only). Subclasses choose what the means are taken of
    (their ``compress`` / ``decompress``).
    """

    def symbols_per_string(self, shape: tuple[int, ...]) -> list[int]:
        return super().symbols_per_string(shape) + ([0] if self.center else [])

