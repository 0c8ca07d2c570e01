"""gdal-style datasets: ``Open`` gives the same small surface for a .hsic file and for any GDAL raster."""

from __future__ import annotations

import os

import numpy as np

from engine.errors import InputError
from hsi_gdal.gdal_env import GDAL_TYPE_NAMES, GDAL_TYPES, open_raster
from hsi_gdal.resample import check_buffer, read_resampled
from hsi_gdal.spectral import IMAGERY, band_metadata, imagery_items


class Band:
    """One band of a dataset (1-based index, like GDAL). Holds its dataset so it cannot be freed."""

    def __init__(self, ds: "Dataset", index: int):
        self._ds = ds
        self.index = index

    def ReadAsArray(self, xoff: int = 0, yoff: int = 0, win_xsize: int | None = None,
                    win_ysize: int | None = None, buf_xsize: int | None = None,
                    buf_ysize: int | None = None) -> np.ndarray:
        """(buf_ysize, buf_xsize) array, the window's size by default (see Dataset.ReadAsArray)."""
        return self._ds._read(xoff, yoff, win_xsize, win_ysize, [self.index - 1], buf_xsize, buf_ysize)[0]

    def GetDescription(self) -> str:
        return self._ds._band_descriptions()[self.index - 1]

    def GetMetadata(self, domain: str = "") -> dict:
        return dict(self._ds._band_metadata(domain)[self.index - 1])

    def GetMetadataItem(self, key: str, domain: str = "") -> str | None:
        return self.GetMetadata(domain).get(key)

    def GetNoDataValue(self) -> float | None:
        return self._ds._nodata()

    def GetScale(self) -> float | None:
        return self._ds._band_scale()[self.index - 1]

    def GetOffset(self) -> float | None:
        return self._ds._band_offset()[self.index - 1]

    @property
    def DataType(self) -> int:
        return GDAL_TYPES[self._ds.dtype]

    @property
    def XSize(self) -> int:
        return self._ds.RasterXSize

    @property
    def YSize(self) -> int:
        return self._ds.RasterYSize


class Dataset:
    """Common part of the two kinds of dataset."""

    RasterXSize: int
    RasterYSize: int
    RasterCount: int
    dtype: str

    def GetRasterBand(self, i: int) -> Band:
        if not isinstance(i, int) or not 1 <= i <= self.RasterCount:
            raise InputError(f"band {i!r} does not exist (the raster has bands 1..{self.RasterCount})")
        return Band(self, i)

    def ReadAsArray(self, xoff: int = 0, yoff: int = 0, xsize: int | None = None, ysize: int | None = None,
                    buf_xsize: int | None = None, buf_ysize: int | None = None) -> np.ndarray:
        """(bands, buf_ysize, buf_xsize) array in the source's data type (the window's size by default).

        A buffer of another size than the window is sampled by nearest neighbour, as GDAL does. For a
        .hsic file it is sampled from full resolution (the sidecar, read through GDAL, also uses the
        stored overviews: GDAL picks them itself).
        """
        return self._read(xoff, yoff, xsize, ysize, None, buf_xsize, buf_ysize)

    def GetMetadataItem(self, key: str, domain: str = "") -> str | None:
        return self.GetMetadata(domain).get(key)

    def _window(self, xoff, yoff, xsize, ysize):
        xsize = self.RasterXSize - xoff if xsize is None else xsize
        ysize = self.RasterYSize - yoff if ysize is None else ysize
        if xoff < 0 or yoff < 0 or xsize < 1 or ysize < 1 or xoff + xsize > self.RasterXSize \
                or yoff + ysize > self.RasterYSize:
            raise InputError(f"window (xoff={xoff}, yoff={yoff}, xsize={xsize}, ysize={ysize}) is outside "
                             f"the {self.RasterXSize} x {self.RasterYSize} raster")
        return xoff, yoff, xsize, ysize


class GdalDataset(Dataset):
    """Any raster GDAL reads, wrapped; the osgeo dataset is held for the wrapper's lifetime."""

    def __init__(self, path: str):
        self.path = os.fspath(path)
        self._gds = open_raster(self.path)
        self.RasterXSize, self.RasterYSize, self.RasterCount = (
            self._gds.RasterXSize, self._gds.RasterYSize, self._gds.RasterCount)
        self._bands = [self._gds.GetRasterBand(i + 1) for i in range(self.RasterCount)]
        name = GDAL_TYPE_NAMES.get(self._bands[0].DataType, "").lower()
        self.dtype = {"byte": "uint8"}.get(name, name)

    def GetGeoTransform(self):
        return self._gds.GetGeoTransform()

    def GetProjection(self) -> str:
        return self._gds.GetProjection()

    def GetMetadata(self, domain: str = "") -> dict:
        return dict(self._gds.GetMetadata(domain) or {})

    def _read(self, xoff, yoff, xsize, ysize, bands, buf_xsize=None, buf_ysize=None):
        xoff, yoff, xsize, ysize = self._window(xoff, yoff, xsize, ysize)
        bx, by = check_buffer(buf_xsize, buf_ysize, xsize, ysize)
        sel = range(self.RasterCount) if bands is None else bands
        return np.stack([self._bands[b].ReadAsArray(xoff, yoff, xsize, ysize, buf_xsize=bx, buf_ysize=by)
                         for b in sel])

    def _band_descriptions(self):
        return [b.GetDescription() for b in self._bands]

    def _band_metadata(self, domain):
        if domain == "":  # completed from IMAGERY / ENVI forms, as compressing keeps it
            return band_metadata(self._gds)
        return [b.GetMetadata(domain) or {} for b in self._bands]

    def _nodata(self):
        return self._bands[0].GetNoDataValue()

    def _band_scale(self):
        return [b.GetScale() for b in self._bands]

    def _band_offset(self):
        return [b.GetOffset() for b in self._bands]


class HsicDataset(Dataset):
    """A .hsic file read through the engine (tiles decoded on demand and cached)."""

    def __init__(self, path: str, device: str = "auto", weights=None):
        from engine.pipeline import SceneDecoder

        self.path = os.fspath(path)
        self._decoder = SceneDecoder(self.path, device=device, weights=weights)
        h = self.header = self._decoder.header
        self.RasterXSize, self.RasterYSize, self.RasterCount, self.dtype = h.cols, h.rows, h.bands, h.dtype

    def GetGeoTransform(self):
        gt = self.header.geotransform
        return tuple(gt) if gt is not None else (0.0, 1.0, 0.0, 0.0, 0.0, 1.0)

    @property
    def tile_size(self) -> tuple[int, int]:
        """(rows, cols) of the file's tiles."""
        return self.header.tile_rows, self.header.tile_cols

    def set_cache_bytes(self, nbytes: int) -> None:
        """Resize the cache of decoded tiles (256 MB by default)."""
        self._decoder.set_cache_bytes(nbytes)

    @property
    def batch_tiles(self) -> int:
        """Tiles the decoder puts through one forward pass (bulk readers size their windows by it)."""
        return self._decoder.codec.batch_size

    def GetProjection(self) -> str:
        return self.header.crs_wkt

    def GetMetadata(self, domain: str = "") -> dict:
        return dict(self.header.metadata) if domain == "" else {}

    def _read(self, xoff, yoff, xsize, ysize, bands, buf_xsize=None, buf_ysize=None):
        xoff, yoff, xsize, ysize = self._window(xoff, yoff, xsize, ysize)
        bx, by = check_buffer(buf_xsize, buf_ysize, xsize, ysize)
        dec = self._decoder
        sel = list(range(self.RasterCount)) if bands is None else list(bands)
        return read_resampled(dec.read, dec.grid, self.dtype, xoff, yoff, xsize, ysize, bx, by, sel)

    def _band_descriptions(self):
        return list(self.header.band_descriptions)

    def _band_metadata(self, domain):
        if domain == IMAGERY:  # derived, so that GDAL >= 3.10 / EnMAP-Box readers find it
            return [imagery_items(md) for md in self.header.band_metadata]
        return list(self.header.band_metadata) if domain == "" else [{}] * self.RasterCount

    def _nodata(self):
        return self.header.nodata

    def _band_scale(self):
        return list(self.header.band_scale)

    def _band_offset(self):
        return list(self.header.band_offset)


def Open(path, device: str = "auto", weights=None) -> Dataset:
    """Open a .hsic file or any GDAL raster (read-only), like ``osgeo.gdal.Open``.

    ``weights``: the user's weights file a .hsic was written with (found by itself when it lies at
    the recorded path or beside the .hsic).
    """
    path = os.fspath(path)
    if path.lower().endswith(".hsic"):
        return HsicDataset(path, device=device, weights=weights)
    return GdalDataset(path)
