"""The default QGIS style written beside a sidecar (``X.hsic.qml``): which bands to show and how to stretch them.

QGIS loads ``<layer>.qml`` as a layer's default style. Without one, it picks bands 1-3 and stretches
them by a 2-98 % cumulative cut, for which GDAL computes a histogram of QGIS's own layout by decoding
the scene, then writes it back into the sidecar. With one, nothing is computed: the bands are the
true-colour ones (nearest 640, 550 and 470 nm, when the bands carry wavelengths) and the stretch is the
same 2-98 % cut taken from the histograms the sidecar declares (engine/statistics.py).
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from engine.format.container import Header
from hsi_gdal.spectral import imagery_items

RGB_UM = (0.640, 0.550, 0.470)
CUT = (0.02, 0.98)


def display_bands(header: Header) -> list[int]:
    """1-based bands to show: true colour when wavelengths are known, else the first three (or band 1)."""
    if header.bands < 3:
        return [1]
    wl = [imagery_items(md).get("CENTRAL_WAVELENGTH_UM") for md in header.band_metadata]
    if all(w is not None for w in wl):
        um = [float(w) for w in wl]
        if min(um) <= RGB_UM[2] + 0.05 and max(um) >= RGB_UM[0] - 0.05:
            return [min(range(len(um)), key=lambda i: abs(um[i] - t)) + 1 for t in RGB_UM]
    return [1, 2, 3]


def cut_range(stats: dict, cut: tuple[float, float] = CUT) -> tuple[float, float]:
    """The values at the ``cut`` fractions of a band's recorded histogram (linear within a bucket)."""
    hist = stats["histogram"]
    counts, lo, hi = hist["counts"], hist["min"], hist["max"]
    width = (hi - lo) / len(counts)
    total = sum(counts)
    out = []
    for frac in cut:
        target, acc = frac * total, 0.0
        value = hi
        for i, c in enumerate(counts):
            if c and acc + c >= target:
                value = lo + width * (i + (target - acc) / c)
                break
            acc += c
        out.append(min(max(value, stats["min"]), stats["max"]))
    return out[0], out[1]


def _enhancement(parent: ET.Element, tag: str, lo: float, hi: float) -> None:
    ce = ET.SubElement(parent, tag)
    ET.SubElement(ce, "minValue").text = repr(float(lo))
    ET.SubElement(ce, "maxValue").text = repr(float(hi))
    ET.SubElement(ce, "algorithm").text = "StretchToMinimumMaximum"


def style_xml(header: Header, stats: tuple[dict, ...]) -> str | None:
    """The QML text for a .hsic file with per-band ``stats`` (engine/statistics.py), or None when they
    do not cover its display bands."""
    bands = display_bands(header)
    if not stats or any(not stats[b - 1] for b in bands):
        return None
    root = ET.Element("qgis", version="3.22", styleCategories="Symbology")
    pipe = ET.SubElement(root, "pipe")
    if len(bands) == 3:
        r = ET.SubElement(pipe, "rasterrenderer", type="multibandcolor", opacity="1", alphaBand="-1",
                          redBand=str(bands[0]), greenBand=str(bands[1]), blueBand=str(bands[2]))
        tags = ("redContrastEnhancement", "greenContrastEnhancement", "blueContrastEnhancement")
    else:
        r = ET.SubElement(pipe, "rasterrenderer", type="singlebandgray", opacity="1", alphaBand="-1",
                          grayBand=str(bands[0]), gradient="BlackToWhite")
        tags = ("contrastEnhancement",)
    mm = ET.SubElement(r, "minMaxOrigin")
    for tag, text in (("limits", "None"), ("extent", "WholeRaster"), ("statAccuracy", "Estimated"),
                      ("cumulativeCutLower", str(CUT[0])), ("cumulativeCutUpper", str(CUT[1])),
                      ("stdDevFactor", "2")):
        ET.SubElement(mm, tag).text = text
    for tag, b in zip(tags, bands):
        _enhancement(r, tag, *cut_range(stats[b - 1]))
    ET.indent(root)
    return "<!DOCTYPE qgis PUBLIC 'http://mrcc.com/qgis.dtd' 'SYSTEM'>\n" + ET.tostring(root, encoding="unicode") + "\n"
