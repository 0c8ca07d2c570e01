"""Network parts shared by several models: the band adapter, a fixed gain, per-band tile means as side
information, padding to the down-sampling factor, chunked forward passes, and compressai's rANS decoding
without its per-call conversions (:func:`rans_decompress`).
"""

from __future__ import annotations

import array
import weakref

import torch
import torch.nn.functional as F
from torch import nn

from engine.errors import FormatError
from engine.format.strings import pack_means, unpack_means


class BandAdapter(nn.Module):
    """Band-count-independent 1x1 projection between B spectral bands and C feature channels."""

    def __init__(self, channels: int, knots: int = 512):
        super().__init__()
        self.knots = knots
        self.w_in = nn.Parameter(torch.randn(channels, knots) / knots ** 0.5)
        self.b_in = nn.Parameter(torch.zeros(channels))
        self.w_out = nn.Parameter(torch.randn(channels, knots) / channels ** 0.5)
        self.b_out = nn.Parameter(torch.zeros(1, knots))

    @staticmethod
    def _at(curves: torch.Tensor, bands: int) -> torch.Tensor:
        """Sample (rows, knots) curves at ``bands`` evenly spaced positions -> (rows, bands)."""
        return F.interpolate(curves[None], size=bands, mode="linear", align_corners=True)[0]

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        bands = x.shape[1]
        # Mean rather than sum over bands: features keep their scale whatever B is.
        w = self._at(self.w_in, bands) * (self.knots / bands)
        return torch.einsum("cb,nbhw->nchw", w, x) + self.b_in[:, None, None]

    def decode(self, h: torch.Tensor, bands: int) -> torch.Tensor:
        w = self._at(self.w_out, bands)
        return torch.einsum("cb,nchw->nbhw", w, h) + self._at(self.b_out, bands)[0][:, None, None]


# The entropy coder's tables as the lists compressai's rANS decoder takes, per entropy model: compressai
# converts them (and the decoded symbols) between tensors and lists on every call. Keyed by the model and
# the tables' identity, so an update() (which builds new table tensors) is never served stale lists.
_coder_lists: "weakref.WeakKeyDictionary" = weakref.WeakKeyDictionary()


def rans_decompress(em, strings: list[bytes], indexes: torch.Tensor, dtype=torch.float32, means=None):
    """``EntropyModel.decompress(em, strings, indexes, dtype, means)`` of compressai, the same values, with
    the coder's tables made lists once per model and the decoded symbols read through ``array``."""
    tables = (em._quantized_cdf, em._cdf_length, em._offset)
    cached = _coder_lists.get(em)
    if cached is None or any(a is not b for a, b in zip(cached[0], tables)):
        cached = (tables, (tables[0].tolist(), tables[1].reshape(-1).int().tolist(),
                           tables[2].reshape(-1).int().tolist()))
        _coder_lists[em] = cached
    cdf, lengths, offsets = cached[1]
    if len(strings) != indexes.size(0):
        raise ValueError("Invalid strings or indexes parameters")
    outputs = torch.empty(indexes.size(), dtype=tables[0].dtype)
    for i, s in enumerate(strings):
        values = em.entropy_coder.decode_with_indexes(s, indexes[i].reshape(-1).int().tolist(), cdf, lengths,
                                                      offsets)
        # array('i'): C int, 32 bits here; the fastest list -> int32 tensor (torch.tensor: twice the time)
        symbols = torch.frombuffer(array.array("i", values), dtype=torch.int32) if values else \
            torch.empty(0, dtype=torch.int32)  # frombuffer refuses an empty buffer
        outputs[i] = symbols.reshape(outputs[i].size())
    return em.dequantize(outputs, means, dtype)


def pad_to(x: torch.Tensor, multiple: int) -> torch.Tensor:
    """``x`` padded at the bottom and right (by replication) to a multiple of ``multiple`` pixels."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    return F.pad(x, (0, pw, 0, ph), mode="replicate") if ph or pw else x


def chunked(net: nn.Module, t: torch.Tensor, n: int = 16) -> torch.Tensor:
    """``net`` over the batch in chunks of ``n``, so memory stays bounded (the band-by-band modes have one
    image per band)."""
    return net(t) if t.shape[0] <= n else torch.cat([net(c) for c in t.split(n)])


class Gain(nn.Module):
    """A fixed factor (no parameters): puts a latent on the quantiser's scale from the first step."""

    def __init__(self, factor: float):
        super().__init__()
        self.factor = factor

    def forward(self, t):
        return t * self.factor


class TileMeans:
    """Per-band tile means as side information, for models built with ``center=True``.

    The tile is coded relative to its per-band means, which travel as float16 (2 bytes per band per
    tile) next to the latent; the centred tile is scaled by ``input_gain``. Normalised hyperspectral tiles
    vary little around their mean spectrum (std across patches about 0.01 of the range): without the
    means, the all-bands codecs learned to draw the mean image and ignore their input in our short
    training runs (scripts/probe_latent_use.py, docs/codecs.md).
    """

    center: bool = False
    input_gain: float = 1.0

    @staticmethod
    def tile_means(x: torch.Tensor) -> torch.Tensor:
        """Per-band means (N, B) of a tile batch, rounded to float16 as they are written.

        Detached: side information needs no gradient, and one through the float16 rounding would be cast
        to float16 and overflow (s2cnet's joint training went NaN that way).
        """
        return x.detach().mean((2, 3)).half().float()

    def centre(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor | None]:
        """What the analysis reads and the means to send: ``(x, None)`` without ``center``."""
        if not self.center:
            return x, None
        m = self.tile_means(x)
        return (x - m[..., None, None]) * self.input_gain, m

    def uncentre(self, x_hat: torch.Tensor, m: torch.Tensor | None) -> torch.Tensor:
        """Inverse of :meth:`centre` on a reconstruction; ``x_hat`` itself when ``m`` is None."""
        return x_hat if m is None else x_hat / self.input_gain + m[..., None, None].to(x_hat.device)

    @staticmethod
    def means_groups(m: torch.Tensor | None) -> list[list[bytes]]:
        """The group of strings holding the means (one float16 string per tile), or none."""
        return [] if m is None else [pack_means(m.cpu().numpy())]

    def means_bytes(self, bands: int) -> int:
        """Length of one tile's means string: float16 per band (s2cnet: per latent channel)."""
        return 2 * bands

    def check_means(self, groups: list[list[bytes]], bands: int) -> None:
        """FormatError unless the last group of a tile's (raw) strings holds means of the right length."""
        if self.center and any(len(s) != self.means_bytes(bands) for s in groups[-1]):
            raise FormatError(f"tile means of {[len(s) for s in groups[-1]]} bytes, "
                              f"{self.means_bytes(bands)} expected")

    def read_means(self, groups: list[list[bytes]], bands: int) -> torch.Tensor | None:
        """(N, B) float32 means from the last group of strings (None without ``center``); checked by
        :meth:`check_means` beforehand, zero-padded strings (guarded_string) read the same."""
        if not self.center:
            return None
        return torch.from_numpy(unpack_means(groups[-1], self.means_bytes(bands)))
