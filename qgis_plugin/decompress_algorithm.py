"""``hsic:decompress``: a .hsic file to GeoTIFF or ENVI, through ``hsi_gdal.Translate``."""

from qgis.core import QgsProcessingParameterFile, QgsProcessingParameterRasterDestination

from qgis_plugin.base import HsicAlgorithm, beside, progress_callback


class DecompressAlgorithm(HsicAlgorithm):
    WEIGHTS = "WEIGHTS"

    ID = "decompress"
    DISPLAY_NAME = "Decompress .hsic to GeoTIFF"
    HELP = (
        "Decodes a .hsic file into a GeoTIFF (.tif), or ENVI BSQ (.img, .bsq, .dat: wavelength, fwhm and bbl "
        "in the .hdr), with the original georeferencing and band metadata. Leave the output empty to write "
        "<input>_decoded.tif next to the input. A file written with your own weights finds them at their "
        "recorded path or beside the .hsic; else name them here."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.add_hsic_input()
        self.addParameter(QgsProcessingParameterRasterDestination(
            self.OUTPUT, "Decompressed raster (empty: <input>_decoded.tif next to the input)",
            optional=True, createByDefault=False))
        self.addParameter(QgsProcessingParameterFile(
            self.WEIGHTS, "Weights file it was written with (empty: found by itself)",
            behavior=QgsProcessingParameterFile.File, extension="pt", optional=True))

    def compute(self, parameters, context, feedback):
        import hsi_gdal

        src = self.parameterAsFile(parameters, self.INPUT, context)
        dst = self.output_file(parameters, self.OUTPUT, context, beside(src, "_decoded.tif"),
                               (".tif", ".tiff", ".img", ".bsq", ".dat"))  # GeoTIFF or ENVI
        hsi_gdal.Translate(dst, src, progress=progress_callback(feedback),
                           weights=self.parameterAsFile(parameters, self.WEIGHTS, context) or None)
        return {self.OUTPUT: dst}
