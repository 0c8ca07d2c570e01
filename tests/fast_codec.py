"""A lossless, fast stand-in codec for tests that need big scenes (tile counting, overviews, moves).

It registers under the id ``test-stand-in`` (with a file number no codec of engine/codec_ids.py has)
only for the duration of a test.
"""

import zlib

import numpy as np

from engine import codec_ids, registry
from engine.codecs.base import CodecInfo, TileCodec

CODEC_ID = "test-stand-in"
NUMBER = 0xFFFF  # the table counts up from 1: no codec has it


class FastLossless(TileCodec):
    info = CodecInfo(id=CODEC_ID, title="zlib over float32 (tests only)", paper="-", qualities=(1,),
                     default_quality=1, uses_weights=False)
    pad_edge_tiles = False

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return zlib.compress(np.ascontiguousarray(tile, dtype=np.float32).tobytes(), 1)

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return np.frombuffer(zlib.decompress(data), dtype=np.float32).reshape(shape).copy()


def install() -> bool:
    """Add the stand-in to the codec table and register it; True when it was (undo with uninstall)."""
    if CODEC_ID in registry._REGISTRY:
        return False
    codec_ids.CODEC_NUMBERS[CODEC_ID] = NUMBER
    registry.register(FastLossless)
    return True


def uninstall() -> None:
    if registry._REGISTRY.get(CODEC_ID) is FastLossless:
        del registry._REGISTRY[CODEC_ID]
        del codec_ids.CODEC_NUMBERS[CODEC_ID]
