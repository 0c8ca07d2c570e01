"""What the algorithms share: per-tile progress with cancellation, HSIC errors as Processing errors, and
outputs that default to a file next to the input."""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingFeedback,
                       QgsProcessingOutputLayerDefinition)


def progress_callback(feedback: QgsProcessingFeedback | None) -> Callable[[float], bool]:
    """A Translate-style ``progress(fraction)``: moves the bar, returns False once the user cancelled."""
    feedback = feedback or QgsProcessingFeedback()

    def progress(fraction: float) -> bool:
        feedback.setProgress(100.0 * fraction)
        return not feedback.isCanceled()

    return progress


@contextmanager
def hsic_errors():
    """HSIC's own errors (bad input, cancelled, missing weights...) become one-line Processing errors."""
    from engine.errors import HSICError

    try:
        yield
    except HSICError as e:
        raise QgsProcessingException(str(e)) from e


def is_unset(value) -> bool:
    """True when an output parameter was left empty or at "temporary output" (then we pick the path)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.staticValue()
    return value is None or value == "" or value == QgsProcessing.TEMPORARY_OUTPUT


def beside(path: str, suffix: str) -> str:
    """``/a/b/scene.tif`` + ``_sam.tif`` -> ``/a/b/scene_sam.tif`` (``.hsic.vrt`` counts as one suffix)."""
    stem = path[:-len(".hsic.vrt")] if path.lower().endswith(".hsic.vrt") else os.path.splitext(path)[0]
    return stem + suffix


def require_suffix(path: str, suffixes: tuple[str, ...], key: str) -> None:
    if not path.lower().endswith(suffixes):
        raise QgsProcessingException(f"{key} must be a {' or '.join(suffixes)} file, got {path!r}")


def raster_path(alg, parameters: dict, key: str, context) -> str:
    """The file behind a raster-layer parameter; a .hsic path is accepted as it is (QGIS cannot load it
    as a layer, but hsi_gdal reads it)."""
    value = parameters.get(key)
    if isinstance(value, str) and value.lower().endswith(".hsic"):
        if not os.path.isfile(value):
            raise QgsProcessingException(f"{key}: file {value!r} does not exist")
        return value
    layer = alg.parameterAsRasterLayer(parameters, key, context)
    if layer is None:
        raise QgsProcessingException(alg.invalidRasterError(parameters, key))
    if layer.providerType() != "gdal":
        raise QgsProcessingException(
            f"{key} must be a raster file GDAL can read, not a {layer.providerType()!r} layer")
    return layer.source()
