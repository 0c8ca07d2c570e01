"""What the Processing algorithms share: the base class ``HsicAlgorithm`` and the small helpers for
output paths, progress and errors.

An algorithm declares its parameters in ``initAlgorithm``, checks their values in ``check_values`` and
does its work in ``compute`` by calling the public ``hsi_gdal`` API, imported inside the methods that
need it so that QGIS loads the plugin without torch. Ids are fixed strings (``ID``): renaming a display
name must not break saved models or qgis_process scripts.
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import Callable

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingFeedback,
                       QgsProcessingOutputLayerDefinition, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterNumber, QgsProcessingParameterRasterDestination)

from engine.errors import HSICError
from qgis_plugin import deps


@contextmanager
def hsic_errors():
    """HSIC's own errors (bad input, cancelled, missing weights...) become one-line Processing errors."""
    try:
        yield
    except HSICError as e:
        raise QgsProcessingException(str(e)) from e


def progress_callback(feedback: QgsProcessingFeedback) -> Callable[[float], bool]:
    """A Translate-style ``progress(fraction)``: moves the bar, returns False once the user cancelled."""

    def progress(fraction: float) -> bool:
        feedback.setProgress(100.0 * fraction)
        return not feedback.isCanceled()

    return progress


def is_unset(value) -> bool:
    """True when a parameter was left empty or at "temporary output" (then we pick the path)."""
    if isinstance(value, QgsProcessingOutputLayerDefinition):
        value = value.sink.staticValue()
    return value is None or value == "" or value == QgsProcessing.TEMPORARY_OUTPUT


def beside(path: str, suffix: str) -> str:
    """``/a/b/scene.tif`` + ``_sam.tif`` -> ``/a/b/scene_sam.tif`` (``.hsic.vrt`` counts as one suffix)."""
    stem = path[:-len(".hsic.vrt")] if path.lower().endswith(".hsic.vrt") else os.path.splitext(path)[0]
    return stem + suffix


def require_suffix(path: str, suffixes: tuple[str, ...], key: str) -> None:
    # hsi_gdal picks what to write from the suffix (Translate: compress or decode), so a wrong one would
    # do something else: refuse it up front with a message naming the parameter.
    if not path.lower().endswith(suffixes):
        raise QgsProcessingException(f"{key} must be a {' or '.join(suffixes)} file, got {path!r}")


class HsicAlgorithm(QgsProcessingAlgorithm):
    """Base of the HSIC algorithms: identity and help from class constants, the dependency check before
    any value check, HSIC errors as Processing errors, and parameter readers the algorithms share."""

    ID = ""  # the algorithm id after "hsic:", fixed forever
    DISPLAY_NAME = ""
    HELP = ""
    # Parameter keys that several algorithms use with the same meaning.
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    CODEC = "CODEC"
    QUALITY = "QUALITY"

    def name(self) -> str:
        return self.ID

    def displayName(self) -> str:  # noqa: N802
        return self.DISPLAY_NAME

    def shortHelpString(self) -> str:  # noqa: N802
        return self.HELP

    def createInstance(self):  # noqa: N802
        return type(self)()

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, message = self.check_inputs(parameters, context)
        if not ok:
            return ok, message
        missing = deps.missing()
        if missing:
            return False, deps.message(missing)
        try:
            return self.check_values(parameters, context)
        except HSICError as e:
            return False, str(e)

    def check_inputs(self, parameters, context) -> tuple[bool, str]:
        """Processing's own checks of the parameters (types, required values), before the dependencies."""
        return super().checkParameterValues(parameters, context)

    def check_values(self, parameters, context) -> tuple[bool, str]:
        """The algorithm's own checks, once the dependencies are there; may raise HSICError."""
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        deps.require()
        with hsic_errors():
            return self.compute(parameters, context, feedback or QgsProcessingFeedback())

    def compute(self, parameters, context, feedback) -> dict:
        """The work: read the parameters, call hsi_gdal, return the outputs."""
        raise NotImplementedError

    def add_codec_and_quality(self, default: str | None = None) -> None:
        """The CODEC choice (``default``, else the default codec) and the optional QUALITY (empty: its default)."""
        from engine.registry import DEFAULT_CODEC, list_codecs  # lists codecs without importing torch

        self.addParameter(QgsProcessingParameterEnum(
            self.CODEC, "Codec", options=[info.id for info in list_codecs()], defaultValue=default or DEFAULT_CODEC,
            # Values are the codec ids themselves (CODEC=cae1d), not positions in the list.
            usesStaticStrings=True))
        # Optional without a default: each codec has its own qualities and default.
        self.addParameter(QgsProcessingParameterNumber(
            self.QUALITY, "Quality (empty: the codec's default)", type=QgsProcessingParameterNumber.Integer,
            minValue=0, optional=True))

    def add_hsic_input(self) -> None:
        """INPUT: an existing .hsic file."""
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, "Compressed file", behavior=QgsProcessingParameterFile.File, extension="hsic"))

    def optional_int(self, parameters, key: str, context) -> int | None:
        return None if is_unset(parameters.get(key)) else self.parameterAsInt(parameters, key, context)

    def optional_double(self, parameters, key: str, context) -> float | None:
        return None if is_unset(parameters.get(key)) else self.parameterAsDouble(parameters, key, context)

    def raster_layer_file(self, parameters, key: str, context) -> str:
        """The file behind a raster-layer parameter; only layers GDAL reads (hsi_gdal opens them itself)."""
        layer = self.parameterAsRasterLayer(parameters, key, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, key))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{key} must be a raster file GDAL can read, not a {layer.providerType()!r} layer")
        return layer.source()

    def output_file(self, parameters, key: str, context, default: str, suffixes: tuple[str, ...]) -> str:
        """The path of output ``key``, or ``default`` when it was left empty; refused unless it ends in
        one of ``suffixes``."""
        if is_unset(parameters.get(key)):
            path = default
        elif isinstance(self.parameterDefinition(key), QgsProcessingParameterRasterDestination):
            path = self.parameterAsOutputLayer(parameters, key, context)
        else:
            path = self.parameterAsFileOutput(parameters, key, context)
        require_suffix(path, suffixes, key)
        return path
