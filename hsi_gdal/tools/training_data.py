"""Training data of ``hsic train --dataset``: a folder of rasters (see :mod:`hsi_gdal.training`), or
HySpecNet-11k, whose patches become :class:`engine.training.Scene` objects read only when training draws
them, so the 11k patches are never held in memory.

HySpecNet-11k (Fuchs & Demir, IGARSS 2023) layout::

    ROOT/patches/tile_*/tile_*-patch_*/tile_*-patch_*-SPECTRAL_IMAGE.TIF   (EnMAP L2A, 224 bands, int16)
    ROOT/patches/tile_*/tile_*-patch_*/tile_*-patch_*-DATA.npy             (the benchmark's float arrays)
    ROOT/splits/{easy,hard}/{train,val,test}.csv                           (one patch path per line)

The benchmark's preprocessing is applied: the 22 water-vapour bands (0-based 126-140 and 160-166) are
dropped, leaving 202, reflectance is clipped to [0, 10000] and divided by 10000. ``-DATA.npy`` arrays
that already have 202 bands are taken as preprocessed by the benchmark's own script.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from engine.errors import InputError
from engine.training import Scene
from hsi_gdal.training import folder_scenes, read_raster

HYSPECNET_BANDS = 224
WATER_VAPOUR_BANDS = tuple(range(126, 141)) + tuple(range(160, 167))
KEPT_BANDS = tuple(b for b in range(HYSPECNET_BANDS) if b not in WATER_VAPOUR_BANDS)
SPLITS = ("easy", "hard")
SUBSETS = ("train", "val", "test")


def hyspecnet_preprocess(cube: np.ndarray) -> np.ndarray:
    """The benchmark's preprocessing of a 224-band patch: 202 bands, clipped to [0, 10000], / 10000."""
    if cube.shape[0] != HYSPECNET_BANDS:
        raise InputError(f"a HySpecNet-11k patch has {HYSPECNET_BANDS} bands, this one {cube.shape[0]}")
    kept = cube[list(KEPT_BANDS)].astype(np.float32)
    return np.clip(kept, 0, 10000) / np.float32(10000)


def _load_patch(folder: Path) -> tuple[np.ndarray, float | None]:
    stem = folder.name
    npy = folder / f"{stem}-DATA.npy"
    if npy.is_file():
        arr = np.load(npy, mmap_mode="r", allow_pickle=False)
        if arr.ndim == 3 and arr.shape[0] == len(KEPT_BANDS):
            return np.asarray(arr, dtype=np.float32), None
        return hyspecnet_preprocess(np.asarray(arr)), None
    tif = folder / f"{stem}-SPECTRAL_IMAGE.TIF"
    if tif.is_file():
        return hyspecnet_preprocess(read_raster(tif)[0]), None
    raise InputError(f"HySpecNet-11k patch {folder} has neither {npy.name} nor {tif.name}")


def _patch_folder(patches: Path, entry: str) -> Path:
    """A split line names a patch file or folder (relative to patches/); return the patch folder."""
    rel = Path(entry.strip().replace("\\", "/"))
    if rel.is_absolute() or ".." in rel.parts:
        raise InputError(f"HySpecNet-11k split entry {entry!r} is not a path inside patches/")
    path = patches / rel
    return path.parent if path.suffix else path


def hyspecnet_scenes(root, split: str = "easy", subset: str = "train") -> list[Scene]:
    """The patches of one HySpecNet-11k split (``easy`` or ``hard``) and subset (``train``/``val``/``test``)."""
    if split not in SPLITS:
        raise InputError(f"unknown HySpecNet-11k split {split!r}; choose {' or '.join(SPLITS)}")
    if subset not in SUBSETS:
        raise InputError(f"unknown HySpecNet-11k subset {subset!r}; choose one of {', '.join(SUBSETS)}")
    root = Path(root)
    csv_path = root / "splits" / split / f"{subset}.csv"
    patches = root / "patches"
    if not csv_path.is_file() or not patches.is_dir():
        raise InputError(f"{root} is not a HySpecNet-11k folder (expected {csv_path} and {patches}/)")
    with open(csv_path, newline="") as f:
        entries = [row[0] for row in csv.reader(f) if row and row[0].strip()]
    if entries and not any(sep in entries[0] for sep in "/\\"):  # a header row, not a path
        entries = entries[1:]
    scenes = []
    for entry in entries:
        folder = _patch_folder(patches, entry)
        if not folder.is_dir():
            raise InputError(f"{csv_path}: patch {entry.strip()} is missing under {patches}")
        # One sensor for sensor-balanced drawing: every patch is EnMAP.
        scenes.append(Scene(f"enmap_{folder.name}", lambda folder=folder: _load_patch(folder)))
    if not scenes:
        raise InputError(f"{csv_path} lists no patches")
    return scenes


def dataset_scenes(dataset: str, root, split: str = "easy") -> list[Scene]:
    """The scenes ``hsic train --dataset ... --root ... --split ...`` trains on."""
    if dataset == "folder":
        return folder_scenes(root)
    if dataset == "hyspecnet11k":
        return hyspecnet_scenes(root, split, "train")
    raise InputError(f"unknown dataset {dataset!r}; choose folder or hyspecnet11k")
