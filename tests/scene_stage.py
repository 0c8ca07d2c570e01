"""Tile-level codec tests for codecs with a scene stage (``klt``): bind the stage a file would hold."""

from engine.registry import get_codec


def codec_on(codec_id, tile, quality=None, device="cpu"):
    """``get_codec``, a scene-stage codec fitted on ``tile`` as if it were the scene (deterministic: two
    instances fitted on the same tile hold the same stage, as an encoder and a decoder of one file do)."""
    codec = get_codec(codec_id, quality, device=device)
    if codec.uses_scene_stage:
        codec.fit_scene([(tile, None)], tile.shape[0])
    return codec
