"""The fixed-size records of the ``klt`` codec's bytes (docs/format.md, "Scene section"): the spectral
stage's head and per-component entries (engine/klt.py) and a tile's head and per-plane entries
(engine/klt_codec.py). Their variable parts are rANS streams, made by engine/entropy/."""

from __future__ import annotations

import struct

# stage: u8 version, u16 bands, u16 k, f32 step, u8 mean exponent
STAGE_HEAD = struct.Struct("<BHHfB")
# per component: i8 log-std index, u8 basis exponent, u8 predict flag, u8 Laplace table
STAGE_COLUMN = struct.Struct("<bBBB")
# u8 Laplace table of the mean
STAGE_MEAN_TABLE = struct.Struct("<B")
# tile: u8 context model, u16 planes coded
TILE_HEAD = struct.Struct("<BH")
# per plane: u8 predictor, i8 scale offset, u8 x 2 reconstruction offsets (1/512 step)
PLANE_HEAD = struct.Struct("<BbBB")
