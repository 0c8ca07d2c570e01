"""hsi_gdal: a gdal-style raster layer over GDAL for HSIC's compressed hyperspectral files.

``Open`` reads a .hsic file or any GDAL raster; ``Translate`` compresses to .hsic (writing the VRT
sidecar ``X.hsic.vrt``) or decodes to GeoTIFF or ENVI; ``evaluate`` measures a candidate against a
reference; ``train`` trains a codec's weights on rasters. The names in ``__all__`` are the whole public
API; the submodules are its parts, and ``hsi_gdal.tools`` holds the command line and benchmarks built on it.

Importing this package allows GDAL to run exactly one Python pixel function module, the project's
decoder (``GDAL_VRT_PYTHON_TRUSTED_MODULES``), so sidecars open in this process; it never sets
``GDAL_VRT_ENABLE_PYTHON=YES``, which would let any VRT run any code.
"""

from engine.errors import (CancelledError, CodecError, FormatError, HSICError, HSICIOError,
                           InputError)
from hsi_gdal.gdal_env import allow_decoder

allow_decoder()

from hsi_gdal.dataset import Band, Dataset, Open  # noqa: E402
from hsi_gdal.evaluate import evaluate  # noqa: E402
from hsi_gdal.report import compression_line, compression_record, metric_lines, write_report  # noqa: E402
from hsi_gdal.sidecar import ensure_sidecar  # noqa: E402
from hsi_gdal.training import (check_train_options, installed_weights, missing_weights, record_file,  # noqa: E402
                               train)
from hsi_gdal.translate import Translate, check_rate_options  # noqa: E402

__all__ = [
    "Open", "Translate", "Dataset", "Band", "check_rate_options",
    "evaluate", "write_report", "metric_lines", "compression_record", "compression_line",
    "ensure_sidecar", "allow_decoder",
    "train", "check_train_options", "installed_weights", "missing_weights", "record_file",
    "HSICError", "FormatError", "CodecError", "InputError", "HSICIOError", "CancelledError",
]
