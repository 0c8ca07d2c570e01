"""``hsic:evaluate``: a candidate against a reference; metrics in the log, an HTML report, a SAM map."""

from __future__ import annotations

import os

from qgis.core import (QgsProcessingException, QgsProcessingOutputNumber, QgsProcessingParameterFileDestination,
                       QgsProcessingParameterRasterDestination, QgsProcessingParameterRasterLayer)

from qgis_plugin.base import HsicAlgorithm, beside, progress_callback

# Metrics also returned as numeric outputs (for models and qgis_process --json).
NUMBERS = (("PSNR", "psnr_db", "PSNR (dB)"), ("PSNR_BAND_PEAK", "psnr_band_peak_db", "PSNR per-band peak (dB)"),
           ("SSIM", "ssim", "SSIM"), ("SAM", "sam_deg", "SAM (degrees)"), ("BPPPC", "bpppc", "bpppc"),
           ("RATIO", "compression_ratio", "compression ratio"))


class EvaluateAlgorithm(HsicAlgorithm):
    REFERENCE = "REFERENCE"
    CANDIDATE = "CANDIDATE"
    REPORT = "REPORT"
    SAM_MAP = "SAM_MAP"

    ID = "evaluate"
    DISPLAY_NAME = "Evaluate compression quality"
    HELP = (
        "Compares a candidate (a .hsic file, its .hsic.vrt layer, or any raster) with the reference: "
        "PSNR, per-band-peak PSNR, SSIM, SAM, max error, and the true rate from the candidate's bytes "
        "on disk (the .hsic's for a sidecar layer). Writes an HTML report with a per-band PSNR plot, "
        "and a spectral-angle map (degrees per pixel) as a raster. Empty outputs go next to the "
        "candidate (<candidate>_eval.html, <candidate>_sam.tif). Reference nodata is left out."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterRasterLayer(self.REFERENCE, "Reference raster"))
        self.addParameter(QgsProcessingParameterRasterLayer(self.CANDIDATE, "Candidate (decoded or .hsic)"))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.REPORT, "HTML report (empty: <candidate>_eval.html)", fileFilter="HTML files (*.html)",
            optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.SAM_MAP, "Spectral-angle map (empty: <candidate>_sam.tif)", optional=True,
            createByDefault=False))
        for key, _, label in NUMBERS:
            self.addOutput(QgsProcessingOutputNumber(key, label))

    def check_inputs(self, parameters, context):
        # QGIS cannot load a .hsic as a layer, but its sidecar it can: check that one in its place.
        checked = dict(parameters)
        for key in (self.REFERENCE, self.CANDIDATE):
            value = parameters.get(key)
            if isinstance(value, str) and value.lower().endswith(".hsic"):
                if not os.path.isfile(value):
                    return False, f"{key}: file {value!r} does not exist"
                if not os.path.isfile(value + ".vrt"):
                    return False, f"{key}: {value!r} has no sidecar {value}.vrt; run hsic:open on it first"
                checked[key] = value + ".vrt"
        return super().check_inputs(checked, context)

    def raster_file(self, parameters, key: str, context) -> str:
        """The file behind a raster parameter; a .hsic path is taken as it is (QGIS cannot load it as a
        layer, but hsi_gdal reads it)."""
        value = parameters.get(key)
        if isinstance(value, str) and value.lower().endswith(".hsic"):
            if not os.path.isfile(value):
                raise QgsProcessingException(f"{key}: file {value!r} does not exist")
            return value
        return self.raster_layer_file(parameters, key, context)

    def compute(self, parameters, context, feedback):
        import hsi_gdal

        reference = self.raster_file(parameters, self.REFERENCE, context)
        candidate = self.raster_file(parameters, self.CANDIDATE, context)
        if os.path.abspath(reference) == os.path.abspath(candidate):
            raise QgsProcessingException("the candidate is the reference itself; choose the decoded or .hsic file")
        report = self.output_file(parameters, self.REPORT, context, beside(candidate, "_eval.html"),
                                  (".html", ".htm"))
        sam = self.output_file(parameters, self.SAM_MAP, context, beside(candidate, "_sam.tif"), (".tif", ".tiff"))
        result = hsi_gdal.write_report(reference, candidate, report, sam, progress=progress_callback(feedback))
        for line in hsi_gdal.metric_lines(result):
            feedback.pushInfo(line)
        return {self.REPORT: report, self.SAM_MAP: sam, **{key: result[name] for key, name, _ in NUMBERS}}
