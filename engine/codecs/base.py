"""The contract every codec follows: one tile (bands x rows x cols, normalised float32) to bytes and back.

Codecs are registered in :mod:`engine.registry`. This module imports no torch, so that listing codecs
stays cheap (QGIS loads the plugin without the ML stack).
"""

from __future__ import annotations

import hashlib
from abc import ABC, abstractmethod
from pathlib import Path
from typing import ClassVar

import numpy as np

from engine.errors import CodecError
from engine.registry import CodecInfo

WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"


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

    @abstractmethod
    def encode_tile(self, tile: np.ndarray) -> bytes:
        """Code one normalised float32 tile shaped (bands, rows, cols)."""

    @abstractmethod
    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        """Decode bytes written by encode_tile back to a float32 tile of ``shape``."""
