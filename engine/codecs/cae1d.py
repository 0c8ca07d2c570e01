"""``cae1d``: the per-pixel spectral autoencoder (1D-CAE family) with an entropy-coded latent.

See :mod:`engine.models.spectral_cae` for the network. A tile's pixels are coded independently along
the spectrum, and all latents of a tile go into one rANS string (one string per pixel would cost a few
bytes of coder overhead each).
"""

from __future__ import annotations

import numpy as np

from engine.codecs.base import CodecInfo, TileCodec, same_shape_runs
from engine.codecs.learned import LearnedCodecMixin, guarded_string, onednn_off, to_device
from engine.registry import register

# Pixels per forward pass. On the CPU a small batch bounds activation memory (width x bands x 4 bytes
# per pixel and layer: ~30 MB for 1024 pixels) at no cost in speed; on a GPU a whole tile goes at once.
_CHUNK = {"cpu": 1024, "cuda": 1 << 16}


@register
class Cae1d(LearnedCodecMixin, TileCodec):
    info = CodecInfo(
        id="cae1d",
        title="Spectral convolutional autoencoder (1D-CAE family), entropy-coded latent",
        paper="Kuester et al., 1D-CAE, in Fuchs & Demir, HySpecNet-11k, IGARSS 2023",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    pad_edge_tiles = False  # pixels are coded independently: padding would only add bits
    # Its 1D convolutions gave the same floats for any batch and 1 or 2 threads under oneDNN (measured),
    # as long as chunks are cut per tile (see _chunked); PyTorch's own kernels cost 7x here;
    # tests/engine/test_batched_inference.py keeps checking it.
    exact_cpu_kernels = False
    # Training recipe per quality: architecture and rate-distortion trade-off (loss = lmbda*MSE + bpppc).
    recipes = {
        1: {"arch": {"latent": 12, "width": 32, "positions": 32}, "lmbda": 4000.0, "steps": 16000},
        2: {"arch": {"latent": 24, "width": 32, "positions": 32}, "lmbda": 30000.0, "steps": 16000},
        3: {"arch": {"latent": 32, "width": 32, "positions": 32}, "lmbda": 150000.0, "steps": 16000},
    }

    @staticmethod
    def build_model(arch: dict):
        from engine.models.spectral_cae import SpectralCAE

        return SpectralCAE(**arch)

    @staticmethod
    def training_batch(cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator,
                       batch: int, recipe: dict | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Random spectra (batch, 1, bands) from a normalised (bands, rows, cols) cube, with their mask."""
        bands, rows, cols = cube.shape
        idx = rng.integers(0, rows * cols, size=batch)
        return tuple(a.reshape(bands, -1)[:, idx].T[:, None, :].copy() for a in (cube, valid))

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return self.encode_tiles([tile])[0]

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return self.decode_tiles([(data, shape)])[0]

    def _chunked(self, net, x, px: list[int]):
        """``net`` over pixel spectra (pixels, C, L) of tiles of ``px`` pixels each, in chunks of _CHUNK
        pixels, result on the CPU. On the CPU chunks never span two tiles: oneDNN's rounding depends on
        the chunk's size, and a tile must decode the same whether it came alone or in a batch."""
        import torch

        cuda = self.torch_device.startswith("cuda")
        chunk = _CHUNK["cuda" if cuda else "cpu"]
        parts = [x] if cuda else x.split(px)
        with torch.no_grad(), onednn_off(self.exact_cpu_kernels):
            return torch.cat([net(c.to(self.torch_device, non_blocking=True)).cpu()
                              for part in parts for c in part.split(chunk)])

    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        """The pixels of up to ``batch_size`` tiles go through the network together; one string per tile."""
        import torch

        out = []
        for run in same_shape_runs([t.shape[0] for t in tiles], self.batch_size):  # same band count
            bands = tiles[run[0]].shape[0]
            px = [tiles[i].shape[1] * tiles[i].shape[2] for i in run]
            x = torch.cat([to_device(tiles[i].reshape(bands, -1).T, "cpu") for i in run])[:, None, :]
            if self.torch_device.startswith("cuda"):
                x = x.pin_memory()
            y = self._chunked(self.model.analysis, x, px)
            # (pixels, K, 1) -> (1, K, pixels, 1): one string per tile, entropy coded on the CPU.
            for part in y.split(px):
                (string,) = self.model.entropy_bottleneck.compress(part.permute(1, 0, 2).unsqueeze(0))
                out.append(string)
        return out

    def decode_symbols(self, data: bytes, shape: tuple[int, int, int]) -> list[np.ndarray]:
        """The entropy-decoded latents of a tile (what must agree on every device)."""
        _, rows, cols = shape
        string = guarded_string(data, self.model.latent * rows * cols)
        return [self.model.entropy_bottleneck.decompress([string], (rows * cols, 1)).numpy()]

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        import torch

        out = []
        for run in same_shape_runs([s[0] for _, s in items], self.batch_size):
            bands = items[run[0]][1][0]
            y_hats, px = [], []
            for i in run:
                data, (_, rows, cols) = items[i]
                string = guarded_string(data, self.model.latent * rows * cols)
                y_hats.append(self.model.entropy_bottleneck.decompress([string], (rows * cols, 1))[0].permute(1, 0, 2))
                px.append(rows * cols)
            x_hat = self._chunked(lambda c: self.model.synthesis(c, bands), torch.cat(y_hats), px)
            for i, part in zip(run, x_hat.split(px)):
                _, rows, cols = items[i][1]
                out.append(part[:, 0, :].T.reshape(bands, rows, cols).numpy().astype(np.float32, copy=False))
        return out


@register
class Cae1dDeep(Cae1d):
    """The 1D-CAE's deeper variants (four down-sampling blocks, /16) with 7, 13 or 26 latents per pixel.

    FIELD.md: more blocks give the published 26/13/7 latent values per 202-band pixel; here those are
    the entropy-coded latent sizes, for the low rates.
    """

    info = CodecInfo(
        id="cae1d-deep",
        title="Deeper spectral autoencoder (1D-CAE /16 variants), entropy-coded latent, low rates",
        paper="Kuester et al., 1D-CAE, in Fuchs & Demir, HySpecNet-11k, IGARSS 2023",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    recipes = {
        1: {"arch": {"latent": 7, "width": 32, "positions": 32, "depth": 4}, "lmbda": 1500.0, "steps": 6000},
        2: {"arch": {"latent": 13, "width": 32, "positions": 32, "depth": 4}, "lmbda": 4000.0, "steps": 6000},
        3: {"arch": {"latent": 26, "width": 32, "positions": 32, "depth": 4}, "lmbda": 12000.0, "steps": 6000},
    }
