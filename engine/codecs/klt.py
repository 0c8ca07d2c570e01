"""``klt``: the scene's own KLT as spectral stage, its quantised components coded per tile with a context
model and rANS (the core is engine/klt.py and engine/klt_codec.py; docs/codecs.md has the design and the
measured ablation).

The stage (mean, k leading basis vectors, quantiser step) is fitted once per scene in one streaming pass
(:meth:`fit_scene`) and stored in the file's scene section; a tile holds only its components, so a decoder
keeps those per tile (:meth:`decode_latents`) and reconstructs just the bands asked for (:meth:`expand`).
The rate is continuous: any quantiser step (:meth:`set_step`); the qualities are named presets of it.

Decoding imports numpy and Numba only, never torch: QGIS draws a klt file cold without the ML stack.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from engine import klt_codec
from engine.parallel import thread_map, threads
from engine.codecs.base import BATCH_ENV, CodecInfo, TileCodec, batch_tiles
from engine.context_models import WEIGHTS_PATH as CONTEXT_WEIGHTS
from engine.entropy.laplace import TABLES_PATH as LAPLACE_TABLES
from engine.errors import CodecError, FormatError, InputError
from engine.klt import KLTAccumulator, SpectralStage, make_stage
from engine.registry import register
from engine.weight_files import file_sha256

# Quantiser step of each quality, for data normalised to the scene's valid range ([0, 1]). Chosen on
# train/ scenes (scripts/klt_presets.py: 128 x 128 crops of every other scene) so that the median rate is
# about 0.05, 0.1, 0.25, 0.5 and 1 bpppc.
STEPS = {1: 0.058, 2: 0.022, 3: 0.0055, 4: 0.0022, 5: 0.00104}
# The continuous rate's range of steps: from about 4 bpppc (finest) to a few hundredths (coarsest).
MIN_STEP, MAX_STEP = 1e-6, 1.0


def weights_digest() -> str:
    """One SHA-256 over the digests of the files the coder's probabilities come from (the learned context
    model and the rANS tables): recorded in every klt file like other codecs' weights digest."""
    parts = [f"{Path(p).name}:{file_sha256(Path(p))}\n" for p in (CONTEXT_WEIGHTS, LAPLACE_TABLES)]
    return hashlib.sha256("".join(parts).encode()).hexdigest()


@register
class KLTCodec(TileCodec):
    info = CodecInfo(
        id="klt",
        title="Scene KLT, components coded with a learned context model and rANS (the default)",
        paper="HSIC's own design (issue 14): KLT + context-modelled quantised components",
        qualities=(1, 2, 3, 4, 5),
        default_quality=3,
        uses_weights=False,  # no per-quality .pt file: its model files are covered by weights_sha256 below
    )
    pad_edge_tiles = False  # per-pixel components: edge tiles are coded as they are
    uses_scene_stage = True
    continuous_rate = True
    step_range = (MIN_STEP, MAX_STEP)

    @classmethod
    def preset_step(cls, quality: int) -> float:
        return STEPS[cls.info.check_quality(quality)]

    def __init__(self, quality: int, device: str = "auto", weights: str | Path | None = None):
        if weights is not None:
            raise CodecError("codec 'klt' has no weights file to replace (its stage is fitted per scene)")
        super().__init__(quality, "cpu")  # numpy and Numba: always the CPU
        self.step = self.preset_step(self.quality)
        self.stage: SpectralStage | None = None
        self._digest: str | None = None

    @property
    def weights_sha256(self) -> str:
        if self._digest is None:
            self._digest = weights_digest()
        return self._digest

    def set_step(self, step: float) -> None:
        if isinstance(step, bool) or not isinstance(step, (int, float)) or not math.isfinite(step) \
                or not MIN_STEP <= step <= MAX_STEP:
            raise InputError(f"klt step must be a number in [{MIN_STEP:g}, {MAX_STEP:g}], got {step!r}")
        self.step = float(step)

    def scene_statistics(self, tiles: Iterable[tuple[np.ndarray, np.ndarray]], bands: int):
        acc = KLTAccumulator(bands)
        for x, valid in tiles:
            acc.add(x, valid)
        if acc.n == 0:  # an all-nodata scene: a trivial stage, every tile codes nothing
            acc.add(np.zeros((bands, 1, 1), np.float32))
        mean, basis, var = acc.klt()
        return mean, basis, var, acc.used_bands()

    def stage_from_statistics(self, stats, bands: int) -> bytes:
        mean, basis, var, used = stats
        stage = make_stage(mean, basis, var, used, self.step, klt_codec.choose_k(var, self.step))
        blob = stage.to_bytes()
        self.bind_scene(blob, bands)  # code against exactly what a decoder will read back
        return blob

    def rate_model(self, tiles, stats) -> klt_codec.RateModel:
        return klt_codec.RateModel(tiles, stats)

    def bind_scene(self, blob: bytes, bands: int) -> None:
        try:
            stage = SpectralStage.from_bytes(blob)
        except (ValueError, IndexError, OverflowError) as e:  # FormatError is a ValueError too
            raise FormatError(f"corrupt spectral stage: {e}") from e
        if stage.bands != bands:
            raise FormatError(f"spectral stage has {stage.bands} bands, the file {bands}")
        self.stage = stage

    def _bound(self) -> SpectralStage:
        if self.stage is None:
            raise CodecError("codec 'klt' codes against a scene stage: call fit_scene or bind_scene first")
        return self.stage

    @property
    def batch_size(self) -> int:
        # Tiles are coded on all cores at once (the kernels release the GIL): a few tiles per core
        # keeps them busy while memory stays bounded by one small group. HSIC_BATCH_TILES still rules.
        return batch_tiles("cpu") if os.environ.get(BATCH_ENV, "").strip() else 2 * threads()

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return klt_codec.encode_tile(tile, self._bound())

    def encode_tiles(self, tiles: list[np.ndarray]) -> list[bytes]:
        stage = self._bound()
        return thread_map(lambda t: klt_codec.encode_tile(t, stage), tiles)

    def decode_latents(self, items: list[tuple[bytes, tuple[int, int, int]]]) -> list[np.ndarray]:
        stage = self._bound()
        for _, (bands, _, _) in items:
            if bands != stage.bands:
                raise FormatError(f"tile of {bands} bands for a {stage.bands}-band stage")
        return thread_map(lambda item: klt_codec.decode_tile(item[0], stage, *item[1][1:]), items)

    def expand(self, latent: np.ndarray, bands: np.ndarray | None) -> np.ndarray:
        return klt_codec.reconstruct(latent, self._bound(), bands)

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return self.expand(self.decode_latents([(data, shape)])[0], None)
