"""Spectral band metadata conventions: what HSIC keeps, and the forms other tools read.

HSIC stores per-band metadata in GDAL's default domain, as EnMAP and ENVI-derived GeoTIFFs carry it:
``wavelength``, ``wavelength_units``, ``fwhm``, ``bbl``. Two other forms are read and written:

* the IMAGERY domain items ``CENTRAL_WAVELENGTH_UM`` and ``FWHM_UM`` (micrometres), which GDAL >= 3.10
  and EnMAP-Box read first. They are derived from the default-domain items on output (sidecar, decoded
  rasters, ``Band.GetMetadata("IMAGERY")``) and, for a source that has only them, turned into
  ``wavelength`` (Micrometers) and ``fwhm`` on input;
* ENVI headers, whose ``fwhm`` and ``bbl`` lists GDAL 3.6 exposes only in the ``ENVI`` dataset domain
  (``wavelength`` and its units it already puts on each band).
"""

from __future__ import annotations

import math

IMAGERY = "IMAGERY"
ENVI = "ENVI"
# Spellings seen in ENVI headers and GDAL metadata, and the factor to micrometres.
_TO_UM = {
    "nanometers": 1e-3, "nanometer": 1e-3, "nm": 1e-3,
    "micrometers": 1.0, "micrometer": 1.0, "microns": 1.0, "micron": 1.0, "um": 1.0, "µm": 1.0,
    "millimeters": 1e3, "millimeter": 1e3, "mm": 1e3,
}
ENVI_LIST_KEYS = ("wavelength", "fwhm", "bbl")


def _number(text: str | None) -> float | None:
    try:
        v = float(text)
    except (TypeError, ValueError):
        return None
    return v if math.isfinite(v) else None


def _fmt(v: float) -> str:
    return f"{v:.10g}"


def imagery_items(md: dict) -> dict:
    """IMAGERY-domain items (micrometres) for a band's default-domain metadata; {} when not derivable."""
    factor = _TO_UM.get(str(md.get("wavelength_units", "")).strip().lower())
    out = {}
    wl, fwhm = _number(md.get("wavelength")), _number(md.get("fwhm"))
    if factor is not None and wl is not None:
        out["CENTRAL_WAVELENGTH_UM"] = _fmt(wl * factor)
        if fwhm is not None:
            out["FWHM_UM"] = _fmt(fwhm * factor)
    return out


def from_imagery(md: dict, imagery: dict) -> dict:
    """Default-domain items completed from IMAGERY ones, for sources that have only the latter."""
    md = dict(md)
    wl = _number(imagery.get("CENTRAL_WAVELENGTH_UM"))
    if "wavelength" not in md and wl is not None:
        md["wavelength"] = _fmt(wl)
        md["wavelength_units"] = "Micrometers"
        fwhm = _number(imagery.get("FWHM_UM"))
        if "fwhm" not in md and fwhm is not None:
            md["fwhm"] = _fmt(fwhm)
    return md


def parse_envi_list(text: str) -> list[str]:
    """``"{1, 2, 3}"`` -> ``["1", "2", "3"]`` (the form of ENVI header lists)."""
    return [t.strip() for t in text.strip().strip("{}").split(",") if t.strip()]


def envi_list(values: list[str]) -> str:
    return "{" + ", ".join(values) + "}"


def band_metadata(gds) -> list[dict]:
    """Per-band default-domain metadata of an osgeo dataset, completed from IMAGERY and ENVI forms."""
    envi = gds.GetMetadata(ENVI) or {}
    lists = {k: parse_envi_list(envi[k]) for k in ENVI_LIST_KEYS if k in envi}
    lists = {k: v for k, v in lists.items() if len(v) == gds.RasterCount}
    units = envi.get("wavelength_units")
    out = []
    for i in range(gds.RasterCount):
        band = gds.GetRasterBand(i + 1)
        md = dict(band.GetMetadata() or {})
        md = from_imagery(md, band.GetMetadata(IMAGERY) or {})
        for key, values in lists.items():
            md.setdefault(key, values[i])
        if units and "wavelength" in md:
            md.setdefault("wavelength_units", units)
        del band
        out.append(md)
    return out


def envi_header_items(band_mds: list[dict]) -> dict:
    """ENVI-domain dataset items (written into the .hdr) from per-band metadata: lists only when complete."""
    items = {}
    for key in ENVI_LIST_KEYS:
        values = [md.get(key) for md in band_mds]
        if values and all(v is not None and _number(v) is not None for v in values):
            items[key] = envi_list(values)
    units = {md.get("wavelength_units") for md in band_mds}
    if "wavelength" in items and len(units) == 1 and None not in units:
        items["wavelength_units"] = units.pop()
    return items
