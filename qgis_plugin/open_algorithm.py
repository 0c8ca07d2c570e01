"""``hsic:open``: a .hsic file as a georeferenced raster layer of the project, through its VRT sidecar."""

from __future__ import annotations

import os

from qgis.core import (QgsProcessingAlgorithm, QgsProcessingContext, QgsProcessingException,
                       QgsProcessingOutputRasterLayer, QgsProcessingParameterFile,
                       QgsProcessingParameterString)

from qgis_plugin.common import hsic_errors


class OpenAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    NAME = "NAME"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "open"

    def displayName(self) -> str:  # noqa: N802
        return "Open .hsic as a raster layer"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Adds a .hsic file to the project as a georeferenced raster layer (CRS, extent, band names, "
            "wavelengths) through its sidecar <file>.hsic.vrt, which is written if it is missing. Tiles "
            "are decoded when QGIS draws or reads them. Also lets GDAL run HSIC's decoder in this QGIS "
            "(and nothing else). Use the Identify tool on the layer to see a pixel's spectrum."
        )

    def createInstance(self):  # noqa: N802
        return type(self)()

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterFile(
            self.INPUT, "Compressed file", behavior=QgsProcessingParameterFile.File, extension="hsic"))
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

    def checkParameterValues(self, parameters, context):  # noqa: N802
        # Our message first: the file parameter's own says only "Incorrect parameter value".
        problem = self._check_input(self.parameterAsFile(parameters, self.INPUT, context) or "")
        if problem:
            return False, problem
        from qgis_plugin import deps

        if deps.missing():
            return False, deps.message(deps.missing())
        return super().checkParameterValues(parameters, context)

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis_plugin.deps import require

        require()
        path = self.parameterAsFile(parameters, self.INPUT, context)
        problem = self._check_input(path)
        if problem:
            raise QgsProcessingException(problem)
        name = self.parameterAsString(parameters, self.NAME, context) or os.path.basename(path)

        from hsi_gdal.env import allow_decoder
        from hsi_gdal.sidecar import write_sidecar

        with hsic_errors():
            from engine.pipeline import SceneDecoder

            # Opening the decoder checks the file and finds its weights now, with a clear message,
            # instead of a layer that is valid but draws nothing.
            decoder = SceneDecoder(path)
            header = decoder.header
            decoder.close()
            vrt = path + ".vrt"
            if not os.path.isfile(vrt):
                vrt = write_sidecar(path, header)
                feedback.pushInfo(f"wrote the sidecar {vrt}")
        # GDAL runs Python pixel functions only from trusted modules; this trusts HSIC's decoder alone.
        allow_decoder()
        feedback.pushInfo(f"{header.bands} bands x {header.rows} rows x {header.cols} cols, "
                          f"{header.codec} quality {header.quality}")
        feedback.setProgress(100)
        context.addLayerToLoadOnCompletion(
            vrt, QgsProcessingContext.LayerDetails(name, context.project(), self.OUTPUT))
        return {self.OUTPUT: vrt}
