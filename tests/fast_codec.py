"""A lossless, fast stand-in codec for tests that need big scenes (tile counting, overviews, moves).

It registers under the id ``deflate`` (reserved in engine/codec_ids.py) only for the duration of a
test, unless a real ``deflate`` codec is registered already, which is then used as it is.
"""

import zlib

import numpy as np

from engine import registry
from engine.codecs.base import TileCodec
from engine.registry import CodecInfo

CODEC_ID = "deflate"


class FastLossless(TileCodec):
    info = CodecInfo(id=CODEC_ID, title="zlib over float32 (tests only)", paper="-", qualities=(1,),
                     default_quality=1)
    pad_edge_tiles = False

    def encode_tile(self, tile: np.ndarray) -> bytes:
        return zlib.compress(np.ascontiguousarray(tile, dtype=np.float32).tobytes(), 1)

    def decode_tile(self, data: bytes, shape: tuple[int, int, int]) -> np.ndarray:
        return np.frombuffer(zlib.decompress(data), dtype=np.float32).reshape(shape).copy()


def install() -> bool:
    """Register the stand-in if no ``deflate`` codec exists; True when it was registered (undo later)."""
    registry._load_all()
    if CODEC_ID in registry._REGISTRY:
        return False
    registry.register(FastLossless)
    return True


def uninstall() -> None:
    if registry._REGISTRY.get(CODEC_ID) is FastLossless:
        del registry._REGISTRY[CODEC_ID]
