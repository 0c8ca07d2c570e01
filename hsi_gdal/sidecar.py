"""The VRT sidecar that makes ``X.hsic`` open as a georeferenced raster in GDAL, rasterio and QGIS."""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET

from engine.errors import HSICIOError
from engine.format.container import Header, partial_name, remove_stale_partials
from engine.pipeline import ReadWindow, check_progress
from engine.statistics import scene_statistics
from engine.tiling import TileGrid
from hsi_gdal.gdal_env import GDAL_TYPE_NAMES, GDAL_TYPES
from hsi_gdal.locate import header_key
from hsi_gdal.spectral import IMAGERY, imagery_items
from hsi_gdal.style import style_xml

PIXEL_FUNCTION = "hsi_gdal.pixelfn.decode"


def _metadata(parent: ET.Element, items: dict, domain: str = "") -> None:
    if items:
        md = ET.SubElement(parent, "Metadata", domain=domain) if domain else ET.SubElement(parent, "Metadata")
        for k, v in items.items():
            ET.SubElement(md, "MDI", key=str(k)).text = str(v)


def _fmt(v: float) -> str:
    return repr(float(v))


def statistics_items(stats: dict) -> dict:
    """The STATISTICS_* band metadata GDAL reads (GetStatistics) for a band's recorded statistics."""
    if not stats:
        return {}
    return {"STATISTICS_MINIMUM": _fmt(stats["min"]), "STATISTICS_MAXIMUM": _fmt(stats["max"]),
            "STATISTICS_MEAN": _fmt(stats["mean"]), "STATISTICS_STDDEV": _fmt(stats["std"]),
            "STATISTICS_VALID_PERCENT": _fmt(stats["valid_percent"])}


def _histogram(band: ET.Element, stats: dict) -> None:
    """The band's histogram as GDAL's PAM writes one (GetDefaultHistogram returns it without reading)."""
    if not stats:
        return
    hist = stats["histogram"]
    item = ET.SubElement(ET.SubElement(band, "Histograms"), "HistItem")
    for tag, text in (("HistMin", _fmt(hist["min"])), ("HistMax", _fmt(hist["max"])),
                      ("BucketCount", str(len(hist["counts"]))), ("IncludeOutOfRange", "0"),
                      ("Approximate", "0"), ("HistCounts", "|".join(map(str, hist["counts"])))):
        ET.SubElement(item, tag).text = text


def _pixel_function(band: ET.Element, args: dict) -> None:
    ET.SubElement(band, "PixelFunctionType").text = PIXEL_FUNCTION
    ET.SubElement(band, "PixelFunctionLanguage").text = "Python"
    ET.SubElement(band, "PixelFunctionArguments", **args)


def _derived_band(parent: ET.Element, header: Header, index: int, type_name: str) -> ET.Element:
    band = ET.SubElement(parent, "VRTRasterBand", dataType=type_name, band=str(index),
                         subClass="VRTDerivedRasterBand", blockXSize=str(header.tile_cols),
                         blockYSize=str(header.tile_rows))
    if header.nodata is not None:
        ET.SubElement(band, "NoDataValue").text = _fmt(header.nodata)
    return band


def _overview(band: ET.Element, header: Header, factor: int, size: tuple[int, int], args: dict,
              type_name: str) -> None:
    """An <Overview> whose source is an inline one-band VRT (GDAL opens VRT XML given as a file name)
    reading the stored level ``factor``: no extra file to keep beside the sidecar."""
    rows, cols = size
    ds = ET.Element("VRTDataset", rasterXSize=str(cols), rasterYSize=str(rows))
    _pixel_function(_derived_band(ds, header, 1, type_name), {**args, "level": str(factor)})
    ov = ET.SubElement(band, "Overview")
    ET.SubElement(ov, "SourceFilename", relativeToVRT="0").text = ET.tostring(ds, encoding="unicode")
    ET.SubElement(ov, "SourceBand").text = "1"


def sidecar_xml(hsic_path: str, header: Header, key: str | None = None,
                levels: dict[int, tuple[int, int]] | None = None, statistics: tuple[dict, ...] = ()) -> str:
    """The VRT text for a .hsic file.

    The pixel function finds the .hsic file beside the sidecar, even after both were moved
    (``file``, ``vrt`` and the header ``key``, see hsi_gdal/locate.py), else at its absolute ``path``.
    ``levels`` maps stored overview factors to their (rows, cols); each becomes an <Overview>.
    ``statistics`` (one dict a band, :func:`tiled_statistics`) are declared as GDAL's PAM would.
    """
    path = os.path.abspath(hsic_path)
    file = os.path.basename(path)
    root = ET.Element("VRTDataset", rasterXSize=str(header.cols), rasterYSize=str(header.rows))
    if header.crs_wkt:
        ET.SubElement(root, "SRS", dataAxisToSRSAxisMapping="1,2").text = header.crs_wkt
    if header.geotransform is not None:
        ET.SubElement(root, "GeoTransform").text = ", ".join(_fmt(v) for v in header.geotransform)
    _metadata(root, header.metadata)
    type_name = GDAL_TYPE_NAMES[GDAL_TYPES[header.dtype]]
    for i in range(header.bands):
        band = _derived_band(root, header, i + 1, type_name)
        if header.band_descriptions[i]:
            ET.SubElement(band, "Description").text = header.band_descriptions[i]
        if header.band_offset[i] is not None:
            ET.SubElement(band, "Offset").text = _fmt(header.band_offset[i])
        if header.band_scale[i] is not None:
            ET.SubElement(band, "Scale").text = _fmt(header.band_scale[i])
        stats = statistics[i] if statistics else {}
        _metadata(band, {**header.band_metadata[i], **statistics_items(stats)})
        _metadata(band, imagery_items(header.band_metadata[i]), IMAGERY)
        _histogram(band, stats)
        args = {"path": path, "file": file, "vrt": file + ".vrt", "band": str(i + 1)}
        if key:
            args["key"] = key
        _pixel_function(band, args)
        for factor, size in sorted((levels or {}).items()):
            _overview(band, header, factor, size, args, type_name)
    ET.indent(root)
    return ET.tostring(root, encoding="unicode") + "\n"


def tiled_statistics(rows: int, cols: int, bands: int, nodata: float | None, read_window: ReadWindow,
                     tile_rows: int, tile_cols: int, progress=None) -> tuple[dict, ...]:
    """Per-band statistics and histograms (engine/statistics.py) of a scene read window by window.

    Shared by Translate (the source) and ensure_sidecar (the decoded .hsic). They live in the sidecar,
    never in the .hsic: every byte of that counts in the rate. ``progress(fraction)`` returning False
    cancels (CancelledError).
    """
    windows = list(TileGrid(rows, cols, min(tile_rows, rows), min(tile_cols, cols)).windows())
    reads = [0]

    def read(*win):
        check_progress(progress, reads[0] / (2 * len(windows)))  # scene_statistics reads each window twice
        reads[0] += 1
        return read_window(*win)

    stats = scene_statistics(bands, nodata, read, windows)
    check_progress(progress, 1.0)
    return stats


def _write_text(path: str, text: str) -> str:
    """``text`` written and fsynced under a temporary name beside ``path``; returns that name."""
    tmp = partial_name(path)
    try:
        with open(tmp, "x", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
    except OSError as e:
        _remove_quietly(tmp)
        raise HSICIOError(f"cannot write {path}: {e.strerror or e}") from e
    except BaseException:
        _remove_quietly(tmp)
        raise
    return tmp


def _remove_quietly(path: str) -> None:
    try:
        os.remove(path)
    except OSError:
        pass


def _sidecar_text(written: str, hsic_path: str, header: Header, statistics: tuple[dict, ...] = ()) -> str:
    """The sidecar of the .hsic file ``written`` (its bytes), for when it lies at ``hsic_path``."""
    from engine.format.container import open_hsic
    from engine.overviews import read_levels

    with open_hsic(written) as reader:
        levels = {f: (lv.header.rows, lv.header.cols) for f, lv in read_levels(reader).items()}
    return sidecar_xml(hsic_path, header, header_key(written), levels, statistics)


def write_sidecar(hsic_path: str, header: Header, statistics: tuple[dict, ...] = ()) -> str:
    """Write ``<hsic_path>.vrt`` atomically for the .hsic file at ``hsic_path``, declaring ``statistics``
    (:func:`tiled_statistics`) and writing the default style from them; returns the sidecar's path."""
    vrt = os.fspath(hsic_path) + ".vrt"
    remove_stale_partials(vrt)
    tmp = _write_text(vrt, _sidecar_text(hsic_path, hsic_path, header, statistics))
    try:
        os.replace(tmp, vrt)
    except OSError as e:
        _remove_quietly(tmp)
        raise HSICIOError(f"cannot write {vrt}: {e.strerror or e}") from e
    write_style(hsic_path, header, statistics)
    return vrt


def commit_pair(written: str, hsic_path: str, header: Header, statistics: tuple[dict, ...] = ()) -> str:
    """Move the .hsic file ``written`` (a temporary name beside ``hsic_path``) to ``hsic_path`` together
    with its sidecar; returns the sidecar's path.

    Both files are complete on disk before either is renamed, so a full disk or any error leaves the
    target as it was (``written`` is removed). Between the two renames a killed process leaves the new
    .hsic beside the old sidecar: the sidecar's key then no longer matches and :func:`ensure_sidecar`
    rewrites it.
    """
    vrt = os.fspath(hsic_path) + ".vrt"
    tmp = None
    try:
        for target in (hsic_path, vrt):  # what killed runs left (the live ones, ours included, stay)
            remove_stale_partials(target)
        tmp = _write_text(vrt, _sidecar_text(written, hsic_path, header, statistics))
        os.replace(written, hsic_path)
        os.replace(tmp, vrt)
        write_style(hsic_path, header, statistics)
    except OSError as e:
        for p in (written, tmp):
            if p:
                _remove_quietly(p)
        if isinstance(e, HSICIOError):
            raise
        raise HSICIOError(f"cannot write {hsic_path}: {e.strerror or e}") from e
    except BaseException:
        for p in (written, tmp):
            if p:
                _remove_quietly(p)
        raise
    return vrt


def sidecar_is_current(hsic_path: str) -> bool:
    """Whether ``<hsic_path>.vrt`` exists and was written for the .hsic file now at ``hsic_path``."""
    vrt = os.fspath(hsic_path) + ".vrt"
    try:
        with open(vrt, encoding="utf-8") as f:
            text = f.read()
    except OSError:
        return False
    key = header_key(hsic_path)
    return key is not None and f'key="{key}"' in text


def style_path(hsic_path) -> str:
    """The default style QGIS loads for the sidecar ``X.hsic.vrt``: ``X.hsic.qml``."""
    return os.fspath(hsic_path) + ".qml"


def write_style(hsic_path, header: Header, statistics: tuple[dict, ...] = ()) -> None:
    """Write (or remove) the default QGIS style beside the sidecar, atomically."""
    qml = style_path(hsic_path)
    style = style_xml(header, statistics)
    if style is None:
        if os.path.isfile(qml):  # a style of an earlier file of that name would show the wrong bands
            os.remove(qml)
        return
    tmp = _write_text(qml, style)
    try:
        os.replace(tmp, qml)
    except OSError as e:
        _remove_quietly(tmp)
        raise HSICIOError(f"cannot write {qml}: {e.strerror or e}") from e


def ensure_sidecar(hsic_path) -> tuple[str, Header, bool]:
    """Check that a .hsic file decodes and give it its sidecar ``<hsic_path>.vrt`` if it has none (or one
    written for another .hsic file at that path).

    Opening the decoder checks the file and finds its weights now, with a one-line error, instead of a
    layer that opens but draws nothing. A new sidecar declares the statistics of the decoded scene
    (decoded once here, so that GDAL and QGIS later answer them without decoding).
    Returns (sidecar path, header, whether the sidecar was written).
    """
    from engine.pipeline import SceneDecoder

    hsic_path = os.fspath(hsic_path)
    vrt = hsic_path + ".vrt"
    decoder = SceneDecoder(hsic_path)
    try:
        header = decoder.header
        if sidecar_is_current(hsic_path):
            return vrt, header, False
        # None yet, or a stale one (a run killed between renaming the .hsic and its sidecar): rewrite it,
        # with the statistics of the decoded scene (once; later opens decode nothing).
        stats = tiled_statistics(header.rows, header.cols, header.bands, header.nodata, decoder.read,
                                 header.tile_rows, header.tile_cols)
    finally:
        decoder.close()
    return write_sidecar(hsic_path, header, stats), header, True
