"""``hsic:compress``: a raster to a .hsic file and its georeferenced sidecar, through ``hsi_gdal.Translate``;
the sidecar is added to the map and the log says what the file costs."""

import os

from qgis.core import (QgsProcessingOutputRasterLayer, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterNumber,
                       QgsProcessingParameterRasterLayer)

from qgis_plugin.base import ALL_WEIGHTS, HsicAlgorithm, beside, codecs_help, progress_callback


class CompressAlgorithm(HsicAlgorithm):
    SIDECAR = "SIDECAR"
    WEIGHTS = "WEIGHTS"
    # Rate control (engine/rate_control.py): each optional; any of them replaces QUALITY.
    TARGETS = {"BPPPC": ("bpppc", "Target rate: at most this many bits per pixel per band"),
               "MIN_PSNR": ("min_psnr", "Target quality: at least this PSNR (dB) on every tile"),
               "MAX_SAM": ("max_sam", "Target quality: at most this mean SAM (degrees) on every tile")}
    # Error-bounded mode (engine/residual.py): optional, empty = off; with QUALITY, not with a target.
    MAX_ABS_ERROR = "MAX_ABS_ERROR"

    ID = "compress"
    DISPLAY_NAME = "Compress hyperspectral raster"
    DEFAULT_OUTPUT = "<input>.hsic"
    HELP = (
        "Compresses a (hyperspectral) raster with a learned codec into a .hsic file, and writes a "
        "georeferenced sidecar <output>.vrt beside it that QGIS and GDAL open as a raster; the result is "
        "added to the map, and the log gives the codec, quality, bytes, rate (bpppc) and compression ratio. "
        "Leave Quality empty to use the codec's default, and Compressed file at <input>.hsic (or empty) to "
        "write it next to the input. Or leave Quality empty and set a target instead: "
        "a rate (bits per pixel per band) the file must not exceed, or a minimum PSNR / maximum SAM "
        "every tile must meet; the codec's quality is then chosen by really encoding and measuring. "
        "Max abs error: every sample decodes within this of the input, in its units (0: lossless); "
        "a coded residual is added to the learned codec's output (not with a target). "
        "Weights: your own weights file from hsic:train for this codec and quality (keep it beside the "
        ".hsic: decoding needs it). A cancel stops at the next tile and leaves no output.\n\n"
        "Codecs (give CODEC by id, e.g. CODEC=klt, or by number) with their qualities:\n"
    )

    def help(self) -> str:
        return self.HELP + codecs_help()

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, "Input raster"))
        self.add_codec_and_quality()
        for key, (_, label) in self.TARGETS.items():
            self.addParameter(QgsProcessingParameterNumber(
                key, label, type=QgsProcessingParameterNumber.Double, minValue=0.0, optional=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.MAX_ABS_ERROR, "Max abs error per sample, in the input's units (empty: off; 0: lossless)",
            type=QgsProcessingParameterNumber.Double, minValue=0.0, optional=True))
        # The placeholder default shows in the dialog's box (not "[Skip output]"); output_file reads it.
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "Compressed file (<input>.hsic: next to the input)",
            fileFilter="HSIC files (*.hsic)", defaultValue=self.DEFAULT_OUTPUT, optional=True))
        self.addOutput(QgsProcessingOutputRasterLayer(self.SIDECAR, "Compressed raster layer (its sidecar .hsic.vrt)"))
        self.addParameter(QgsProcessingParameterFile(
            self.WEIGHTS, "Weights file from hsic:train (empty: the installed weights)",
            behavior=QgsProcessingParameterFile.File, extension="pt", optional=True))

    def _options(self, parameters, context) -> dict:
        """The Translate options that the form's quality, targets and error bound ask for."""
        return {"quality": self.optional_int(parameters, self.QUALITY, context),
                "max_abs_error": self.optional_double(parameters, self.MAX_ABS_ERROR, context),
                **{name: self.optional_double(parameters, key, context)
                   for key, (name, _) in self.TARGETS.items()}}

    def check_values(self, parameters, context):
        import hsi_gdal
        from engine.registry import get_info

        options = self._options(parameters, context)
        info = get_info(self.codec(parameters, context))
        quality = info.check_quality(options["quality"])
        hsi_gdal.check_rate_options(**options)
        # A plugin zip carries only some codecs' weights: say so now, not after reading the input.
        own_weights = self.parameterAsFile(parameters, self.WEIGHTS, context)
        if not own_weights and quality in hsi_gdal.missing_weights(info.id):
            return False, (f"the weights of {info.id} quality {quality} are not installed here; give WEIGHTS "
                           f"from hsic:train, or use {ALL_WEIGHTS}")
        return True, ""

    def compute(self, parameters, context, feedback):
        import hsi_gdal

        src = self.raster_layer_file(parameters, self.INPUT, context)
        dst = self.output_file(parameters, self.OUTPUT, context, beside(src, ".hsic"), (".hsic",))
        options = self._options(parameters, context)
        ds = hsi_gdal.Translate(dst, src, progress=progress_callback(feedback), codec=self.codec(parameters, context),
                                weights=self.parameterAsFile(parameters, self.WEIGHTS, context) or None, **options)
        targets = [f"{name} {options[name]:g}" for name, _ in self.TARGETS.values() if options[name] is not None]
        if targets:
            feedback.pushInfo(f"quality {ds.header.quality} chosen for the target {', '.join(targets)}")
        feedback.pushInfo(hsi_gdal.compression_line(dst, hsi_gdal.compression_record(dst, ds.header)))
        sidecar = dst + ".vrt"
        self.load_on_completion(context, sidecar, os.path.basename(dst), self.SIDECAR)
        return {self.OUTPUT: dst, self.SIDECAR: sidecar}
