"""hsi_gdal: a gdal-style raster layer over GDAL for HSIC's compressed hyperspectral files.

``Open`` reads a .hsic file or any GDAL raster; ``Translate`` compresses to .hsic (writing the VRT
sidecar ``X.hsic.vrt``) or decodes to GeoTIFF.

Importing this package allows GDAL to run exactly one Python pixel function module, the project's
decoder (``GDAL_VRT_PYTHON_TRUSTED_MODULES``), so sidecars open in this process; it never sets
``GDAL_VRT_ENABLE_PYTHON=YES``, which would let any VRT run any code.
"""

from engine.errors import (CancelledError, CodecError, FormatError, HSICError, HSICIOError,
                           InputError)
from hsi_gdal.env import allow_decoder

allow_decoder()

from hsi_gdal.dataset import Band, Dataset, Open  # noqa: E402
from hsi_gdal.evaluate import evaluate  # noqa: E402
from hsi_gdal.translate import Translate  # noqa: E402

__all__ = [
    "Open", "Translate", "evaluate", "Dataset", "Band",
    "HSICError", "FormatError", "CodecError", "InputError", "HSICIOError", "CancelledError",
]
