"""GDAL configuration that lets sidecars decode through HSIC, and nothing else."""

from __future__ import annotations

from osgeo import gdal

TRUSTED_MODULE = "hsi_gdal.pixelfn"
_KEY = "GDAL_VRT_PYTHON_TRUSTED_MODULES"


def allow_decoder() -> None:
    """Add the decoder module to GDAL's trusted pixel-function modules, keeping any already listed.

    GDAL 3.6 reads GDAL_VRT_PYTHON_TRUSTED_MODULES (the documented GDAL_VRT_TRUSTED_MODULES is
    ignored there). Only this module is added; Python in other VRTs stays disabled.
    """
    current = gdal.GetConfigOption(_KEY) or ""
    modules = [m for m in current.split(",") if m]
    if TRUSTED_MODULE not in modules:
        gdal.SetConfigOption(_KEY, ",".join(modules + [TRUSTED_MODULE]))


def env_lines() -> list[str]:
    """Shell lines that let GDAL tools outside Python open sidecars (for documentation and `hsic env`)."""
    return [f"export {_KEY}={TRUSTED_MODULE}"]
