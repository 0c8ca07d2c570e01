"""The Processing provider: id ``hsic``; its algorithms are listed in ``ALGORITHMS`` and nowhere else."""

from qgis.core import QgsProcessingProvider

from qgis_plugin.compress_algorithm import CompressAlgorithm
from qgis_plugin.decompress_algorithm import DecompressAlgorithm
from qgis_plugin.evaluate_algorithm import EvaluateAlgorithm
from qgis_plugin.open_algorithm import OpenAlgorithm
from qgis_plugin.train_algorithm import TrainAlgorithm

ALGORITHMS = (CompressAlgorithm, DecompressAlgorithm, EvaluateAlgorithm, OpenAlgorithm, TrainAlgorithm)


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
        # hsi_gdal writes GeoTIFF or ENVI only (decoded rasters, SAM maps): offer no other raster format.
        return ["tif", "img", "bsq", "dat"]
