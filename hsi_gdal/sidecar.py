"""The VRT sidecar that makes ``X.hsic`` open as a georeferenced raster in GDAL, rasterio and QGIS."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from engine.container import Header
from hsi_gdal._gdal import GDAL_TYPE_NAMES, GDAL_TYPES
from hsi_gdal.spectral import IMAGERY, imagery_items

PIXEL_FUNCTION = "hsi_gdal.pixelfn.decode"


def _metadata(parent: ET.Element, items: dict, domain: str = "") -> None:
    if items:
        md = ET.SubElement(parent, "Metadata", domain=domain) if domain else ET.SubElement(parent, "Metadata")
        for k, v in items.items():
            ET.SubElement(md, "MDI", key=str(k)).text = str(v)


def _fmt(v: float) -> str:
    return repr(float(v))


def sidecar_xml(hsic_path: str, header: Header) -> str:
    """The VRT text for a .hsic file (its path is stored absolute: the pixel function gets no VRT path)."""
    path = os.path.abspath(hsic_path)
    root = ET.Element("VRTDataset", rasterXSize=str(header.cols), rasterYSize=str(header.rows))
    if header.crs_wkt:
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = header.crs_wkt
    if header.geotransform is not None:
        ET.SubElement(root, "GeoTransform").text = ", ".join(_fmt(v) for v in header.geotransform)
    _metadata(root, header.metadata)
    type_name = GDAL_TYPE_NAMES[GDAL_TYPES[header.dtype]]
    for i in range(header.bands):
        band = ET.SubElement(root, "VRTRasterBand", dataType=type_name, band=str(i + 1),
                             subClass="VRTDerivedRasterBand", blockXSize=str(header.tile_cols),
                             blockYSize=str(header.tile_rows))
        if header.band_descriptions[i]:
            ET.SubElement(band, "Description").text = header.band_descriptions[i]
        if header.nodata is not None:
            ET.SubElement(band, "NoDataValue").text = _fmt(header.nodata)
        if header.band_offset[i] is not None:
            ET.SubElement(band, "Offset").text = _fmt(header.band_offset[i])
        if header.band_scale[i] is not None:
            ET.SubElement(band, "Scale").text = _fmt(header.band_scale[i])
        _metadata(band, header.band_metadata[i])
        _metadata(band, imagery_items(header.band_metadata[i]), IMAGERY)
        ET.SubElement(band, "PixelFunctionType").text = PIXEL_FUNCTION
        ET.SubElement(band, "PixelFunctionLanguage").text = "Python"
        ET.SubElement(band, "PixelFunctionArguments", path=path, band=str(i + 1))
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def write_sidecar(hsic_path: str, header: Header) -> str:
    """Write ``<hsic_path>.vrt`` atomically; returns its path."""
    vrt = os.fspath(hsic_path) + ".vrt"
    tmp = vrt + ".partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(sidecar_xml(hsic_path, header))
    os.replace(tmp, vrt)
    return vrt
