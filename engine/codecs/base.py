"""The contract every codec follows: one tile (bands x rows x cols, normalised float32) to bytes and back.

Codecs are registered in :mod:`engine.registry`. This module imports no torch, so that listing codecs
stays cheap (QGIS loads the plugin without the ML stack).
"""

from __future__ import annotations

import hashlib
import os
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.errors import CodecError, InputError
from engine.registry import CodecInfo

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"

# Tiles per forward pass. On a CPU one 128 x 128 tile already keeps the cores busy, so batching buys
# nothing there; on a GPU several tiles per pass amortise kernel launches and transfers.
BATCH_ENV = "HSIC_BATCH_TILES"
DEFAULT_BATCH = {"cpu": 1, "cuda": 16}


def batch_tiles(device: str) -> int:
    """Tiles per forward pass on ``device``: ``HSIC_BATCH_TILES`` when set, else a per-device default."""
    env = os.environ.get(BATCH_ENV, "").strip()
    if env:
        try:
            n = int(env)
        except ValueError:
            n = 0
        if n < 1:
            raise InputError(f"{BATCH_ENV}={env!r}: give a whole number of tiles, at least 1")
        return n
    return DEFAULT_BATCH.get(device, 1)


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


class TileCodec(ABC):
    """A codec instance bound to one quality level and one device."""

    info: ClassVar[CodecInfo]
    # Spatial codecs need every tile at the full tile size (edge tiles are padded by replication and
    # cropped back); a per-pixel codec codes edge tiles as they are, since padding would cost bits.
    pad_edge_tiles: ClassVar[bool] = True

    def __init__(self, quality: int, device: str = "auto", weights: str | Path | None = None):
        self.quality = self.info.check_quality(quality)
        self.device = device
        # A user's weights file (e.g. from `hsic train`) in place of the installed one for this quality.
        self.user_weights = Path(weights) if weights is not None else None

    @property
    def weights_path(self) -> Path | None:
        if self.user_weights is not None:
            return self.user_weights
        name = self.info.weights.get(self.quality, "")
        return WEIGHTS_DIR / name if name else None

    @property
    def weights_sha256(self) -> str:
        """Digest of the weights file this instance codes with ("" for codecs without weights)."""
        path = self.weights_path
        if path is None:
            return ""
        if not path.is_file():
            raise CodecError(f"weights for {self.info.id} quality {self.quality} are missing: {path}")
        return file_sha256(path)

    @property
    def batch_size(self) -> int:
        """How many tiles :meth:`encode_tiles` / :meth:`decode_tiles` put through one forward pass."""
        return batch_tiles(getattr(self, "torch_device", "cpu"))

    @abstractmethod
    def encode_tile(self, tile: np.ndarray) -> bytes:
        """Code one normalised float32 tile shaped (bands, rows, cols)."""

    @abstractmethod
    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        """Decode bytes written by encode_tile back to a float32 tile of ``shape``."""

    # Several tiles at once. The bytes of each tile are exactly what encode_tile writes for it (tested
    # for every codec): batching changes speed, never the bitstream. Learned codecs override these.
    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        """:meth:`encode_tile` for each tile, in order."""
        return [self.encode_tile(t) for t in tiles]

    def decode_tiles(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        """:meth:`decode_tile` for each (bytes, shape), in order."""
        return [self.decode_tile(data, shape) for data, shape in items]


def same_shape_runs(shapes: list[tuple[int, ...]], limit: int) -> list[list[int]]:
    """Indices of ``shapes`` in runs of consecutive equal shapes, at most ``limit`` long (one batch each)."""
    runs: list[list[int]] = []
    for i, s in enumerate(shapes):
        if runs and shapes[runs[-1][0]] == s and len(runs[-1]) < limit:
            runs[-1].append(i)
        else:
            runs.append([i])
    return runs
