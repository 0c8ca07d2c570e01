"""Training a codec on rasters: the one call behind ``hsic train`` and the QGIS ``hsic:train`` algorithm.

The work is :func:`engine.training.train`; this module turns rasters into its scenes (each read only when
training draws it, so a large folder is never held in memory), checks the options the way both front
ends report them, and writes the weights where the caller asked.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import HSICIOError, InputError
from engine.training import Scene, TrainConfig

RASTER_SUFFIXES = (".tif", ".tiff", ".img", ".bsq", ".dat", ".vrt")

# progress(step, steps, metrics) -> False to cancel; metrics hold "psnr" and "bpppc" (training estimates).
TrainProgress = Callable[[int, int, dict], "bool | None"]


def read_raster(path) -> tuple[np.ndarray, float | None]:
    """A whole raster (or .hsic) as a (bands, rows, cols) cube and its nodata value."""
    from hsi_gdal.dataset import Open

    ds = Open(str(path))
    return ds.ReadAsArray(), ds.GetRasterBand(1).GetNoDataValue()


def raster_scene(path) -> Scene:
    """A raster file as a training scene, named by its file name (the sensor is the prefix before '_')."""
    return Scene(os.path.basename(os.fspath(path)), lambda: read_raster(path))


def folder_scenes(root) -> list[Scene]:
    """Every raster under ``root`` (recursively)."""
    root = Path(root)
    if not root.is_dir():
        raise InputError(f"training folder {root} does not exist")
    files = sorted(p for p in root.rglob("*") if p.suffix.lower() in RASTER_SUFFIXES and p.is_file())
    if not files:
        raise InputError(f"no training rasters ({', '.join(RASTER_SUFFIXES)}) under {root}")
    return [raster_scene(p) for p in files]


def training_scenes(data) -> list[Scene]:
    """``data`` as training scenes: a folder (every raster under it), or a list of raster files and
    ready-made :class:`engine.training.Scene` objects (e.g. HySpecNet-11k patches)."""
    if isinstance(data, (str, os.PathLike)):
        return folder_scenes(data)
    scenes = [item if isinstance(item, Scene) else raster_scene(item) for item in data]
    if not scenes:
        raise InputError("no training scenes given")
    return scenes


def check_train_options(codec: str, quality: int | None = None, init=None) -> int:
    """The quality to train (``None``: the codec's default); InputError for a codec with nothing to train,
    an unknown quality or a missing ``init`` file. Called by :func:`train` and before it by the QGIS form."""
    from engine.registry import codec_class

    cls = codec_class(codec)
    quality = cls.info.check_quality(quality)
    if not getattr(cls, "recipes", None):
        raise InputError(f"codec {codec!r} has nothing to train")
    if init is not None and not os.path.isfile(init):
        raise InputError(f"weights file {os.fspath(init)!r} to start from does not exist")
    return quality


def installed_weights(codec: str, quality: int) -> str:
    """The weights file installed with HSIC for ``codec`` at ``quality`` (what fine-tuning starts from)."""
    from engine.registry import get_info
    from engine.weight_files import installed_path

    info = get_info(codec)
    name = info.weights.get(info.check_quality(quality), "")
    if not name:
        raise InputError(f"codec {codec!r} has no installed weights for quality {quality}")
    return str(installed_path(name))


def missing_weights(codec: str) -> tuple[int, ...]:
    """The qualities of ``codec`` whose installed weights file is absent (a plugin zip carries only some
    codecs' weights); () for a codec without weights or with all of them."""
    from engine.registry import get_info
    from engine.weight_files import installed_path

    return tuple(q for q, name in get_info(codec).weights.items() if not installed_path(name).is_file())


def train(codec: str, quality: int | None, data, out, *, steps: int | None = None, batch: int | None = None,
          lr: float = 1e-3, seed: int = 0, device: str = "auto", init=None, arch: dict | None = None,
          stage: str | None = None, gan: bool = False, resume: bool = False, checkpoint_every: int = 500,
          progress: TrainProgress | None = None) -> dict:
    """Train ``codec`` at ``quality`` (``None``: its default) on ``data``; returns the training record.

    ``data``: a folder of rasters, or a list of raster files / :class:`engine.training.Scene` objects.
    ``out``: a folder, which receives ``<codec>-q<quality>.pt`` and ``.json`` (and a checkpoint while the
    run lasts, for ``resume``); or a ``.pt`` file, written with its record ``.json`` beside it only when
    the run completes (a failed or cancelled run leaves nothing there).
    ``steps`` and ``batch``: ``None`` takes the codec's recipe. ``init``: a weights file to fine-tune
    (:func:`installed_weights` for the installed ones); ``None`` trains from scratch. ``arch`` replaces keys
    of the recipe's architecture; ``stage`` and ``gan`` select a training stage (see engine/training.py).
    ``progress(step, steps, metrics)`` returning False cancels (CancelledError).
    """
    from engine.training import train as run

    quality = check_train_options(codec, quality, init)
    scenes = training_scenes(data)
    config = TrainConfig(codec, quality, steps=steps, batch=batch, lr=lr, seed=seed, device=device,
                         init=None if init is None else os.fspath(init), checkpoint_every=checkpoint_every,
                         resume=resume, arch=arch, stage=stage, gan=gan)
    out = os.fspath(out)
    if not out.lower().endswith(".pt"):
        return run(config, scenes, Path(out), progress=progress)
    folder = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(folder):
        raise HSICIOError(f"{out}: folder {folder} does not exist")
    with tempfile.TemporaryDirectory(dir=folder) as tmp:
        record = run(config, scenes, Path(tmp), progress=progress)
        shutil.move(os.path.join(tmp, record["weights_file"][:-len(".pt")] + ".json"), record_file(out))
        shutil.move(os.path.join(tmp, record["weights_file"]), out)
    return record


def record_file(weights) -> str:
    """The training record written beside a weights file: ``X.pt`` -> ``X.json``."""
    return os.path.splitext(os.fspath(weights))[0] + ".json"
