"""What the Processing algorithms share: the base class ``HsicAlgorithm`` and the small helpers for
output paths, progress and errors.

An algorithm declares its parameters in ``initAlgorithm``, checks their values in ``check_values`` and
does its work in ``compute`` by calling the public ``hsi_gdal`` API, imported inside the methods that
need it so that QGIS loads the plugin without torch. Ids are fixed strings (``ID``): renaming a display
name must not break saved models or qgis_process scripts.
"""

from __future__ import annotations

import html
import os
from contextlib import contextmanager
from typing import Callable

from qgis.core import (QgsApplication, QgsProcessing, QgsProcessingAlgorithm, QgsProcessingContext,
                       QgsProcessingException, QgsProcessingFeedback, QgsProcessingOutputLayerDefinition,
                       QgsProcessingParameterEnum, QgsProcessingParameterFile, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterDestination, QgsRasterLayer)

from engine.errors import CancelledError, HSICError
from qgis_plugin import deps

CANCELLED = "cancelled by the user; no output was written"
ALL_WEIGHTS = "the plugin built with every codec's weights (python3 scripts/build_plugin.py --all-weights)"


@contextmanager
def hsic_errors():
    """HSIC's own errors (bad input, missing weights...) become one-line Processing errors; a cancel says so
    (QGIS reports any raised error as a failed task, so the message is what tells the user it was a cancel)."""
    try:
        yield
    except CancelledError as e:
        raise QgsProcessingException(CANCELLED) from e
    except HSICError as e:
        raise QgsProcessingException(str(e)) from e


def help_text(text: str) -> str:
    """Help as each front end shows it: the Processing dialog renders it as HTML (where ``<input>`` would
    vanish as an unknown tag, and line breaks collapse), qgis_process prints it as it is."""
    if QgsApplication.platform() == "qgis_process":
        return text
    return html.escape(text).replace("\n", "<br>")


def codec_ids() -> list[str]:
    from engine.registry import list_codecs  # lists codecs without importing torch

    return [info.id for info in list_codecs()]


def codec_id(value) -> str:
    """CODEC as given (a codec id, or its number in the list that ``qgis_process help`` shows) -> the id;
    QgsProcessingException with the valid ids in one line otherwise."""
    ids = codec_ids()
    if isinstance(value, (list, tuple)) and len(value) == 1:  # an enum value may come as a one-item list
        value = value[0]
    text = str(value).strip()
    if text in ids:
        return text
    if text.isdigit() and int(text) < len(ids):
        return ids[int(text)]
    raise QgsProcessingException(f"CODEC: unknown codec {text!r}; valid: {', '.join(ids)} "
                                 f"(or their numbers 0-{len(ids) - 1})")


def codecs_help() -> str:
    """One line per codec for the help: its number, id, qualities and default quality, and whether its
    weights are installed (a plugin zip carries only some codecs' weights)."""
    from engine.registry import DEFAULT_CODEC, list_codecs

    missing = {}
    if not deps.missing():  # hsi_gdal needs numba to import
        import hsi_gdal

        missing = {info.id: hsi_gdal.missing_weights(info.id) for info in list_codecs()}
    lines = []
    for number, info in enumerate(list_codecs()):
        line = (f"{number} {info.id}: qualities {', '.join(map(str, info.qualities))} "
                f"(default {info.default_quality})")
        if info.id == DEFAULT_CODEC:
            line += ", the default codec"
        absent = missing.get(info.id, ())
        if absent:
            line += " [weights not installed" + ("]" if len(absent) == len(info.qualities) else
                                                 f" for quality {', '.join(map(str, absent))}]")
        lines.append(line)
    if any(missing.values()):
        lines.append(f"Codecs marked [weights not installed] need WEIGHTS from hsic:train, or {ALL_WEIGHTS}.")
    return "\n".join(lines)


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
        return help_text(self.help())

    def help(self) -> str:
        """The help as plain text (``<input>`` stands for the input's path without its extension)."""
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
        """Processing's own checks of the parameters (types, required values), before the dependencies.
        CODEC may be given by id or by number: checked here, so a wrong one lists the valid ids."""
        if self.parameterDefinition(self.CODEC) is not None and not is_unset(parameters.get(self.CODEC)):
            try:
                parameters = {**parameters, self.CODEC: codec_id(parameters[self.CODEC])}
            except QgsProcessingException as e:
                return False, str(e)
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

    def load_on_completion(self, context, sidecar: str, name: str, output: str) -> None:
        """Adds the sidecar to the project when the algorithm ends, drawn with its default style (X.hsic.qml).

        Processing's own loader (a path given to addLayerToLoadOnCompletion) skips default styles; QGIS then
        makes its own stretch from statistics it computes by decoding the whole scene on the GUI thread,
        and GDAL writes them into the sidecar. So the layer is made here, with its style, and handed over."""
        layer = QgsRasterLayer(sidecar, name, "gdal")
        if not layer.isValid():
            raise QgsProcessingException(f"QGIS cannot open {sidecar}: {layer.error().summary()}")
        context.temporaryLayerStore().addMapLayer(layer)
        context.addLayerToLoadOnCompletion(
            layer.id(), QgsProcessingContext.LayerDetails(name, context.project(), output))

    def add_codec_and_quality(self, default: str | None = None) -> None:
        """The CODEC choice (``default``, else the default codec) and the optional QUALITY (empty: its default).
        The help lists each codec's qualities and default (:func:`codecs_help`)."""
        from engine.registry import DEFAULT_CODEC

        self.addParameter(QgsProcessingParameterEnum(
            self.CODEC, "Codec", options=codec_ids(), defaultValue=default or DEFAULT_CODEC,
            # Values are the codec ids themselves (CODEC=cae1d), which saved models and scripts keep;
            # check_inputs also takes the number qgis_process help shows.
            usesStaticStrings=True))
        # Optional without a default: each codec has its own qualities and default.
        self.addParameter(QgsProcessingParameterNumber(
            self.QUALITY, "Quality (empty: the codec's default)", type=QgsProcessingParameterNumber.Integer,
            minValue=0, optional=True))

    def add_hsic_input(self) -> None:
        """INPUT: an existing .hsic file."""
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, "Compressed file", behavior=QgsProcessingParameterFile.File, extension="hsic"))

    def codec(self, parameters, context) -> str:
        """The codec id CODEC asks for (its default when empty)."""
        value = parameters.get(self.CODEC)
        return codec_id(self.parameterDefinition(self.CODEC).defaultValue() if is_unset(value) else value)

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
        """The path of output ``key``, or ``default`` when it was left empty or at its placeholder default
        (such as ``<input>.hsic``, under whatever folder the dialog put before it); refused unless it ends in
        one of ``suffixes``."""
        value = parameters.get(key)
        if isinstance(value, QgsProcessingOutputLayerDefinition):
            value = value.sink.staticValue()
        placeholder = self.parameterDefinition(key).defaultValue()
        if is_unset(value) or (isinstance(placeholder, str) and placeholder.startswith("<")
                               and os.path.basename(str(value)) == placeholder):
            path = default
        elif isinstance(self.parameterDefinition(key), QgsProcessingParameterRasterDestination):
            path = self.parameterAsOutputLayer(parameters, key, context)
        else:
            path = self.parameterAsFileOutput(parameters, key, context)
        require_suffix(path, suffixes, key)
        return path
