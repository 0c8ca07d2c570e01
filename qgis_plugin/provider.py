"""The Processing provider: id ``hsic``; its algorithms are listed in ``ALGORITHMS`` and nowhere else."""

from qgis.core import QgsProcessingProvider

from qgis_plugin.algorithms import CompressAlgorithm, DecompressAlgorithm

ALGORITHMS = (CompressAlgorithm, DecompressAlgorithm)


class HsicProvider(QgsProcessingProvider):
    def id(self) -> str:
        return "hsic"

    def name(self) -> str:
        return "HSIC hyperspectral compression"

    def longName(self) -> str:  # noqa: N802
        return self.name()

    def loadAlgorithms(self) -> None:  # noqa: N802
        for cls in ALGORITHMS:
            self.addAlgorithm(cls())

    def supportedOutputRasterLayerExtensions(self) -> list[str]:  # noqa: N802
        # hsi_gdal decodes to GeoTIFF or ENVI only: offer no other raster format in the output dialog.
        return ["tif", "img", "bsq", "dat"]
