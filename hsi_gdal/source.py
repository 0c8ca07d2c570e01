"""A GDAL raster as the engine sees it: a SceneInfo plus a window reader."""

from __future__ import annotations

import numpy as np

from engine.errors import InputError
from engine.pipeline import SUPPORTED_DTYPES, SceneInfo
from hsi_gdal.gdal_env import gdal, open_raster
from hsi_gdal.spectral import band_metadata


def scene_info(ds) -> SceneInfo:
    """Everything the container keeps about a raster's georeferencing and metadata."""
    bands = [ds.GetRasterBand(i + 1) for i in range(ds.RasterCount)]
    dtype = gdal.GetDataTypeName(bands[0].DataType).lower()
    dtype = {"byte": "uint8"}.get(dtype, dtype)
    if any(b.DataType != bands[0].DataType for b in bands):
        raise InputError(f"{ds.GetDescription()}: bands of mixed data types are not supported")
    if dtype == "uint8" and bands[0].GetMetadataItem("PIXELTYPE", "IMAGE_STRUCTURE") == "SIGNEDBYTE":
        # GDAL before 3.7 has no Int8: signed bytes read as unsigned, and would come back wrong.
        raise InputError(f"{ds.GetDescription()}: signed 8-bit samples (PIXELTYPE=SIGNEDBYTE) are not "
                         "supported with this GDAL; convert to Int16 first")
    if dtype not in SUPPORTED_DTYPES:
        raise InputError(f"{ds.GetDescription()}: data type {dtype} is not supported")
    gt = ds.GetGeoTransform(can_return_null=True)
    return SceneInfo(
        rows=ds.RasterYSize, cols=ds.RasterXSize, bands=ds.RasterCount, dtype=dtype,
        nodata=bands[0].GetNoDataValue(),
        crs_wkt=ds.GetProjection() or "",
        geotransform=tuple(gt) if gt is not None else None,
        band_descriptions=tuple(b.GetDescription() for b in bands),
        band_metadata=tuple(band_metadata(ds)),  # IMAGERY-only and ENVI sources too
        band_scale=tuple(b.GetScale() for b in bands),
        band_offset=tuple(b.GetOffset() for b in bands),
        metadata=dict(ds.GetMetadata() or {}),
    )


class RasterSource:
    """Opens a raster and reads (bands, h, w) windows from it; keeps the dataset alive."""

    def __init__(self, path: str):
        self.ds = open_raster(path)
        self.info = scene_info(self.ds)

    def read_window(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        a = self.ds.ReadAsArray(x0, y0, w, h)
        return a.reshape(self.info.bands, h, w)


class HsicSource:
    """A .hsic file as a compressor input (re-coding with another codec or quality)."""

    def __init__(self, path: str, device: str = "auto"):
        from hsi_gdal.dataset import HsicDataset

        self.ds = HsicDataset(path, device=device)
        self.info = SceneInfo.from_header(self.ds.header)

    def read_window(self, y0: int, x0: int, h: int, w: int) -> np.ndarray:
        return self.ds.ReadAsArray(x0, y0, w, h)
