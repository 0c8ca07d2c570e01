"""The contract every codec follows (:class:`TileCodec`: one tile, bands x rows x cols of normalised
float32, to bytes and back) and the facts each codec declares about itself (:class:`CodecInfo`).

Codecs are registered in :mod:`engine.registry`. This module imports no torch, so that listing codecs
stays cheap (QGIS loads the plugin without the ML stack).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from collections.abc import Callable, Iterable
from typing import ClassVar

import numpy as np

from engine import weight_files
from engine.errors import CodecError
from engine.parallel import env_count


@dataclass(frozen=True)
class CodecInfo:
    """Facts about a codec, kept in one place next to its class."""

    id: str  # a row of the codec table, engine/codec_ids.py
    title: str
    paper: str
    qualities: tuple[int, ...]
    default_quality: int
    uses_weights: bool = True
    # Weights file names that differ from the default ``<id>-q<N>.pt`` (engine.weight_files), by quality.
    weight_names: dict[int, str] = field(default_factory=dict)

    @property
    def weights(self) -> dict[int, str]:
        """Weights file per quality, relative to engine/weights ({} for codecs without weights)."""
        if not self.uses_weights:
            return {}
        return {q: self.weight_names.get(q) or weight_files.default_name(self.id, q) for q in self.qualities}

    def check_quality(self, quality: int | None) -> int:
        """Return a valid quality (the default when None) or raise CodecError."""
        if quality is None:
            return self.default_quality
        if isinstance(quality, bool) or not isinstance(quality, int) or quality not in self.qualities:
            raise CodecError(
                f"codec {self.id!r} has no quality {quality!r}; choose one of "
                f"{', '.join(map(str, self.qualities))}"
            )
        return quality


# Tiles per forward pass. On a CPU one 128 x 128 tile already keeps the cores busy, so batching buys
# nothing there; on a GPU several tiles per pass amortise kernel launches and transfers.
BATCH_ENV = "HSIC_BATCH_TILES"
DEFAULT_BATCH = {"cpu": 1, "cuda": 16}


def batch_tiles(device: str) -> int:
    """Tiles per forward pass on ``device``: ``HSIC_BATCH_TILES`` when set, else a per-device default."""
    n = env_count(BATCH_ENV, "tiles")
    return DEFAULT_BATCH.get(device, 1) if n is None else n


class TileCodec(ABC):
    """A codec instance bound to one quality level and one device."""

    info: ClassVar[CodecInfo]
    # Spatial codecs need every tile at the full tile size (edge tiles are padded by replication and
    # cropped back); a per-pixel codec codes edge tiles as they are, since padding would cost bits.
    pad_edge_tiles: ClassVar[bool] = True
    # A codec with a scene stage codes every tile against side information fitted on the whole scene
    # (e.g. its KLT): the pipeline calls fit_scene before coding and stores the bytes it returns once, in
    # the file's scene section (format 1.3); a decoder hands them to bind_scene before decoding a tile.
    uses_scene_stage: ClassVar[bool] = False
    # A codec with a continuous rate takes any quantiser step (set_step) besides its qualities' presets.
    continuous_rate: ClassVar[bool] = False

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
        return weight_files.installed_path(name) if name else None

    @property
    def weights_sha256(self) -> str:
        """Digest of the weights file this instance codes with ("" for codecs without weights)."""
        path = self.weights_path
        if path is None:
            return ""
        if not path.is_file():
            raise CodecError(f"weights for {self.info.id} quality {self.quality} are missing: {path}")
        return weight_files.file_sha256(weight_files.check_weights_file(path))

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

    def fit_scene(self, tiles: Iterable[tuple[np.ndarray, np.ndarray]], bands: int) -> bytes:
        """Fit the scene side information from (normalised tile, valid mask) pairs (one streaming pass over
        the scene, no-data samples filled and marked invalid), bind it and return its bytes."""
        return self.stage_from_statistics(self.scene_statistics(tiles, bands), bands)

    def scene_statistics(self, tiles: Iterable[tuple[np.ndarray, np.ndarray]], bands: int):
        """What :meth:`fit_scene` learns from the pass over the scene, before anything that depends on the
        quantiser step: a rate search fits it once and makes each trial's stage from it."""
        raise CodecError(f"codec {self.info.id!r} has no scene stage")

    def stage_from_statistics(self, stats, bands: int) -> bytes:
        """Make the scene side information for the current step from :meth:`scene_statistics`, bind it and
        return its bytes."""
        raise CodecError(f"codec {self.info.id!r} has no scene stage")

    def bind_scene(self, blob: bytes, bands: int) -> None:
        """Use the scene side information ``blob`` (from fit_scene, read from a file of ``bands`` bands)
        for what follows; FormatError if it is corrupt."""
        raise CodecError(f"codec {self.info.id!r} has no scene stage")

    # The steps set_step accepts, (finest, coarsest), for a continuous-rate codec.
    step_range: ClassVar[tuple[float, float]] = (0.0, 0.0)

    @classmethod
    def preset_step(cls, quality: int) -> float:
        """The quantiser step of a quality (continuous-rate codecs only)."""
        raise CodecError(f"codec {cls.info.id!r} has no continuous rate: choose a quality")

    def set_step(self, step: float) -> None:
        """Code with quantiser ``step`` instead of the quality's preset (continuous-rate codecs only)."""
        raise CodecError(f"codec {self.info.id!r} has no continuous rate: choose a quality")

    def rate_model(self, tiles: Callable[[], Iterable[np.ndarray]], stats):
        """An estimator of the payload bits of some tiles at any step, for a rate search: an object whose
        ``bits(step)`` is cheap next to coding (continuous-rate codecs may have one; None: none).
        ``tiles()`` yields the normalised tiles, ``stats`` is :meth:`scene_statistics`'s result."""
        return None

    def decode_latents(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list:
        """What a decoder caches per tile: by default the decoded tile itself; a codec whose tiles are
        cheaper to keep in another form (e.g. KLT components) returns that, and :meth:`expand` makes bands."""
        return self.decode_tiles(items)

    def expand(self, latent, bands: np.ndarray | None) -> np.ndarray:
        """Normalised samples (len(bands), rows, cols) of a latent from decode_latents (all bands when None)."""
        return latent if bands is None else latent[bands]

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
