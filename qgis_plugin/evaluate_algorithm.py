"""``hsic:evaluate``: a candidate against a reference; metrics in the log, an HTML report, a SAM map."""

from __future__ import annotations

import os

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputNumber,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterRasterDestination,
                       QgsProcessingParameterRasterLayer)

from qgis_plugin.common import (beside, hsic_errors, is_unset, progress_callback, raster_path,
                                require_suffix)

# Metrics also returned as numeric outputs (for models and qgis_process --json).
NUMBERS = (("PSNR", "psnr_db", "PSNR (dB)"), ("PSNR_BAND_PEAK", "psnr_band_peak_db", "PSNR per-band peak (dB)"),
           ("SSIM", "ssim", "SSIM"), ("SAM", "sam_deg", "SAM (degrees)"), ("BPPPC", "bpppc", "bpppc"),
           ("RATIO", "compression_ratio", "compression ratio"))


class EvaluateAlgorithm(QgsProcessingAlgorithm):
    REFERENCE = "REFERENCE"
    CANDIDATE = "CANDIDATE"
    REPORT = "REPORT"
    SAM_MAP = "SAM_MAP"

    def name(self) -> str:
        return "evaluate"

    def displayName(self) -> str:  # noqa: N802
        return "Evaluate compression quality"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Compares a candidate (a .hsic file, its .hsic.vrt layer, or any raster) with the reference: "
            "PSNR, per-band-peak PSNR, SSIM, SAM, max error, and the true rate from the candidate's bytes "
            "on disk (the .hsic's for a sidecar layer). Writes an HTML report with a per-band PSNR plot, "
            "and a spectral-angle map (degrees per pixel) as a raster. Empty outputs go next to the "
            "candidate (<candidate>_eval.html, <candidate>_sam.tif). Reference nodata is left out."
        )

    def createInstance(self):  # noqa: N802
        return type(self)()

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

    def checkParameterValues(self, parameters, context):  # noqa: N802
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
        ok, message = super().checkParameterValues(checked, context)
        if ok:
            from qgis_plugin import deps

            if deps.missing():
                return False, deps.message(deps.missing())
        return ok, message

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis_plugin.deps import require

        require()
        reference = raster_path(self, parameters, self.REFERENCE, context)
        candidate = raster_path(self, parameters, self.CANDIDATE, context)
        if os.path.abspath(reference) == os.path.abspath(candidate):
            raise QgsProcessingException("the candidate is the reference itself; choose the decoded or .hsic file")
        report = self.parameterAsFileOutput(parameters, self.REPORT, context)
        if is_unset(parameters.get(self.REPORT)):
            report = beside(candidate, "_eval.html")
        sam = self.parameterAsOutputLayer(parameters, self.SAM_MAP, context)
        if is_unset(parameters.get(self.SAM_MAP)):
            sam = beside(candidate, "_sam.tif")
        require_suffix(report, (".html", ".htm"), self.REPORT)
        require_suffix(sam, (".tif", ".tiff"), self.SAM_MAP)

        from hsi_gdal.report import metric_lines, write_report

        with hsic_errors():
            result = write_report(reference, candidate, report, sam, progress=progress_callback(feedback))
        for line in metric_lines(result):
            feedback.pushInfo(line)
        return {self.REPORT: report, self.SAM_MAP: sam, **{key: result[name] for key, name, _ in NUMBERS}}
