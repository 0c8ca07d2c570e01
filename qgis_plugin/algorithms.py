"""The Processing algorithms: thin wrappers that read their parameters and call ``hsi_gdal.Translate``.

All real work lives in hsi_gdal and engine, imported inside the methods that need them, so that QGIS
loads the plugin without torch. Ids are fixed strings: renaming a display name must not break saved
models or qgis_process scripts.
"""

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingOutputFile,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from qgis_plugin.common import beside, is_unset


def _translate(dst: str, src: str, feedback: QgsProcessingFeedback | None, **options) -> None:
    """Run hsi_gdal.Translate with per-tile progress and cancellation; HSIC errors become Processing ones."""
    import hsi_gdal
    from engine.errors import HSICError

    feedback = feedback or QgsProcessingFeedback()

    def progress(fraction: float) -> bool:
        feedback.setProgress(100.0 * fraction)
        return not feedback.isCanceled()

    try:
        hsi_gdal.Translate(dst, src, progress=progress, **options)
    except HSICError as e:
        raise QgsProcessingException(str(e)) from e


def _require_suffix(path: str, suffixes: tuple[str, ...], key: str) -> None:
    # hsi_gdal.Translate picks compress or decompress from the destination's suffix, so a wrong suffix
    # would run the other direction: refuse it up front with a message naming the parameter.
    if not path.lower().endswith(suffixes):
        raise QgsProcessingException(f"{key} must be a {' or '.join(suffixes)} file, got {path!r}")


class CompressAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    CODEC = "CODEC"
    QUALITY = "QUALITY"
    OUTPUT = "OUTPUT"
    SIDECAR = "SIDECAR"
    WEIGHTS = "WEIGHTS"
    # Rate control (engine/rate_control.py): each optional; any of them replaces QUALITY.
    TARGETS = {"BPPPC": ("bpppc", "Target rate: at most this many bits per pixel per band"),
               "MIN_PSNR": ("min_psnr", "Target quality: at least this PSNR (dB) on every tile"),
               "MAX_SAM": ("max_sam", "Target quality: at most this mean SAM (degrees) on every tile")}
    # Error-bounded mode (engine/residual.py): optional, empty = off; with QUALITY, not with a target.
    MAX_ABS_ERROR = "MAX_ABS_ERROR"

    def name(self) -> str:
        return "compress"

    def displayName(self) -> str:  # noqa: N802
        return "Compress hyperspectral raster"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compresses a (hyperspectral) raster with a learned codec into a .hsic file, and writes a "
            "georeferenced sidecar <output>.vrt beside it that QGIS and GDAL open as a raster. "
            "Leave Quality empty to use the codec's default, and Compressed file empty to write "
            "<input>.hsic next to the input. Or leave Quality empty and set a target instead: "
            "a rate (bits per pixel per band) the file must not exceed, or a minimum PSNR / maximum SAM "
            "every tile must meet; the codec's quality is then chosen by really encoding and measuring. "
            "Max abs error: every sample decodes within this of the input, in its units (0: lossless); "
            "a coded residual is added to the learned codec's output (not with a target). "
            "Weights: your own weights file from hsic:train for this codec and quality (keep it beside the "
            ".hsic: decoding needs it)."
        )

    def createInstance(self):  # noqa: N802
        return type(self)()

    def initAlgorithm(self, config=None):  # noqa: N802
        # The registry lists codecs without importing torch.
        from engine.registry import DEFAULT_CODEC, list_codecs

        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.addParameter(
            QgsProcessingParameterEnum(
                self.CODEC,
                "Codec",
                options=[info.id for info in list_codecs()],
                defaultValue=DEFAULT_CODEC,
                # Values are the codec ids themselves (CODEC=cae1d), not positions in the list.
                usesStaticStrings=True,
            )
        )
        self.addParameter(
            QgsProcessingParameterNumber(
                self.QUALITY,
                "Quality (empty: the codec's default)",
                type=QgsProcessingParameterNumber.Integer,
                minValue=0,
                # Optional without a default: each codec has its own qualities and default.
                optional=True,
            )
        )
        for key, (_, label) in self.TARGETS.items():
            self.addParameter(QgsProcessingParameterNumber(
                key, label, type=QgsProcessingParameterNumber.Double, minValue=0.0, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_ABS_ERROR, "Max abs error per sample, in the input's units (empty: off; 0: lossless)",
            type=QgsProcessingParameterNumber.Double, minValue=0.0, optional=True))
        self.addParameter(
            QgsProcessingParameterFileDestination(
                self.OUTPUT, "Compressed file (empty: <input>.hsic next to the input)",
                fileFilter="HSIC files (*.hsic)", optional=True, createByDefault=False,
            )
        )
        self.addOutput(QgsProcessingOutputFile(self.SIDECAR, "Georeferenced sidecar (.vrt)"))
        self.addParameter(
            QgsProcessingParameterFile(
                self.WEIGHTS, "Weights file from hsic:train (empty: the installed weights)",
                behavior=QgsProcessingParameterFile.File, extension="pt", optional=True,
            )
        )

    def _quality(self, parameters, context) -> int | None:
        if parameters.get(self.QUALITY) is None:
            return None
        return self.parameterAsInt(parameters, self.QUALITY, context)

    def _targets(self, parameters, context) -> dict:
        return {name: self.parameterAsDouble(parameters, key, context)
                for key, (name, _) in self.TARGETS.items() if parameters.get(key) is not None}

    def _max_abs_error(self, parameters, context) -> float | None:
        if is_unset(parameters.get(self.MAX_ABS_ERROR)):
            return None
        return self.parameterAsDouble(parameters, self.MAX_ABS_ERROR, context)

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        from qgis_plugin import deps

        if deps.missing():
            return False, deps.message(deps.missing())
        from engine.errors import HSICError
        from engine.registry import get_info
        from hsi_gdal.translate import check_rate_options

        codec = self.parameterAsEnumString(parameters, self.CODEC, context)
        quality = self._quality(parameters, context)
        try:
            get_info(codec).check_quality(quality)
            check_rate_options(quality, max_abs_error=self._max_abs_error(parameters, context),
                               **self._targets(parameters, context))
        except HSICError as e:
            return False, str(e)
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis_plugin.deps import require

        require()
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        if layer is None:
            raise QgsProcessingException(self.invalidRasterError(parameters, self.INPUT))
        if layer.providerType() != "gdal":
            raise QgsProcessingException(
                f"{self.INPUT} must be a raster file GDAL can read, not a {layer.providerType()!r} layer"
            )
        codec = self.parameterAsEnumString(parameters, self.CODEC, context)
        quality = self._quality(parameters, context)
        dst = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
        if is_unset(parameters.get(self.OUTPUT)):
            dst = beside(layer.source(), ".hsic")
        _require_suffix(dst, (".hsic",), self.OUTPUT)
        weights = self.parameterAsFile(parameters, self.WEIGHTS, context) or None

        _translate(dst, layer.source(), feedback, codec=codec, quality=quality, weights=weights,
                   max_abs_error=self._max_abs_error(parameters, context), **self._targets(parameters, context))
        return {self.OUTPUT: dst, self.SIDECAR: dst + ".vrt"}


class DecompressAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"
    WEIGHTS = "WEIGHTS"

    def name(self) -> str:
        return "decompress"

    def displayName(self) -> str:  # noqa: N802
        return "Decompress .hsic to GeoTIFF"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Decodes a .hsic file into a GeoTIFF (.tif), or ENVI BSQ (.img, .bsq, .dat: wavelength, fwhm and bbl "
            "in the .hdr), with the original georeferencing and band metadata. Leave the output empty to write "
            "<input>_decoded.tif next to the input. A file written with your own weights finds them at their "
            "recorded path or beside the .hsic; else name them here."
        )

    def createInstance(self):  # noqa: N802
        return type(self)()

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(
            QgsProcessingParameterFile(
                self.INPUT, "Compressed file", behavior=QgsProcessingParameterFile.File, extension="hsic"
            )
        )
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Decompressed raster (empty: <input>_decoded.tif next to the input)",
            optional=True, createByDefault=False))
        self.addParameter(
            QgsProcessingParameterFile(
                self.WEIGHTS, "Weights file it was written with (empty: found by itself)",
                behavior=QgsProcessingParameterFile.File, extension="pt", optional=True,
            )
        )

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis_plugin.deps import require

        require()
        src = self.parameterAsFile(parameters, self.INPUT, context)
        dst = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        if is_unset(parameters.get(self.OUTPUT)):
            dst = beside(src, "_decoded.tif")
        _require_suffix(dst, (".tif", ".tiff", ".img", ".bsq", ".dat"), self.OUTPUT)  # GeoTIFF or ENVI
        weights = self.parameterAsFile(parameters, self.WEIGHTS, context) or None

        _translate(dst, src, feedback, weights=weights)
        return {self.OUTPUT: dst}
