"""``hsic:open``: a .hsic file as a georeferenced raster layer of the project, through its VRT sidecar."""

from __future__ import annotations

import os

from qgis.core import QgsProcessingException, QgsProcessingOutputRasterLayer, QgsProcessingParameterString

from qgis_plugin.base import HsicAlgorithm


class OpenAlgorithm(HsicAlgorithm):
    NAME = "NAME"

    ID = "open"
    DISPLAY_NAME = "Open .hsic as a raster layer"
    HELP = (
        "Adds a .hsic file to the project as a georeferenced raster layer (CRS, extent, band names, "
        "wavelengths) through its sidecar <file>.hsic.vrt, which is written if it is missing. Tiles "
        "are decoded when QGIS draws or reads them. Also lets GDAL run HSIC's decoder in this QGIS "
        "(and nothing else). Use the Identify tool on the layer to see a pixel's spectrum."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_hsic_input()
        self.addParameter(QgsProcessingParameterString(
            self.NAME, "Layer name (empty: the file name)", optional=True))
        self.addOutput(QgsProcessingOutputRasterLayer(self.OUTPUT, "Raster layer (the sidecar)"))

    def _check_input(self, path: str) -> str:
        """'' when ``path`` is an existing .hsic file, else what is wrong with it."""
        if not path.lower().endswith(".hsic"):
            return f"{self.INPUT} must be a .hsic file, got {path!r}"
        if not os.path.isfile(path):
            return f"{self.INPUT}: file {path!r} does not exist"
        return ""

    def check_inputs(self, parameters, context):
        # Our message first: the file parameter's own says only "Incorrect parameter value".
        problem = self._check_input(self.parameterAsFile(parameters, self.INPUT, context) or "")
        if problem:
            return False, problem
        return super().check_inputs(parameters, context)

    def compute(self, parameters, context, feedback):
        import hsi_gdal

        path = self.parameterAsFile(parameters, self.INPUT, context)
        problem = self._check_input(path)
        if problem:
            raise QgsProcessingException(problem)
        name = self.parameterAsString(parameters, self.NAME, context) or os.path.basename(path)
        vrt, header, written = hsi_gdal.ensure_sidecar(path)
        if written:
            feedback.pushInfo(f"wrote the sidecar {vrt}")
        # GDAL runs Python pixel functions only from trusted modules; this trusts HSIC's decoder alone.
        hsi_gdal.allow_decoder()
        feedback.pushInfo(f"{header.bands} bands x {header.rows} rows x {header.cols} cols, "
                          f"{header.codec} quality {header.quality}")
        feedback.setProgress(100)
        self.load_on_completion(context, vrt, name, self.OUTPUT)
        return {self.OUTPUT: vrt}
