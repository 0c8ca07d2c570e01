"""An evaluation written to files: an HTML report with a per-band PSNR plot, and a spectral-angle map raster.

The numbers come from :func:`hsi_gdal.evaluate.evaluate`; this module only lays them out. Both files are
written under temporary names and renamed, so a failed or cancelled run leaves neither behind.
"""

from __future__ import annotations

import base64
import html
import io
import math
import os

import numpy as np
from hsi_gdal.gdal_env import gdal

from engine.errors import HSICIOError
from hsi_gdal.dataset import Open
from hsi_gdal.evaluate import evaluate

# The rows of the metrics table: result key, label, format.
ROWS = (
    ("psnr_db", "PSNR (data-range peak)", "{:.2f} dB"),
    ("psnr_band_peak_db", "PSNR (per-band peak, mean)", "{:.2f} dB"),
    ("ssim", "SSIM (mean over bands)", "{:.4f}"),
    ("sam_deg", "SAM (mean)", "{:.3f} deg"),
    ("max_abs_error", "max abs error", "{:.6g}"),
    ("bpppc", "rate (bytes on disk)", "{:.4f} bpppc"),
    ("compression_ratio", "compression ratio", "{:.1f}:1"),
    ("bytes", "candidate size", "{} bytes"),
)


def candidate_file(path: str) -> str:
    """The file whose size is the rate: ``X.hsic`` for its sidecar ``X.hsic.vrt`` (QGIS opens the sidecar)."""
    if path.lower().endswith(".hsic.vrt") and os.path.isfile(path[:-4]):
        return path[:-4]
    return path


def metric_lines(result: dict) -> list[str]:
    """The metrics table as aligned text lines (for logs)."""
    return [f"{label:28s} {fmt.format(result[key])}" for key, label, fmt in ROWS]


def compression_record(hsic_path: str, header) -> dict:
    """What a written .hsic file costs: its codec, quality and error bound (from ``header``), and its bytes
    on disk with the rate and ratio they make (shared by ``hsic compress`` and ``hsic:compress``)."""
    from engine.metrics import bpppc, compression_ratio

    h = header
    size = os.path.getsize(hsic_path)
    return {"codec": h.codec, "quality": h.quality, "bytes": size, "bpppc": bpppc(size, h.rows, h.cols, h.bands),
            "compression_ratio": compression_ratio(size, h.rows, h.cols, h.bands, h.dtype),
            "max_abs_error": h.max_abs_error}


def compression_line(hsic_path: str, record: dict) -> str:
    """:func:`compression_record` as one log line: ``X.hsic: N bytes, R bpppc, ratio C:1 (codec qN)``."""
    bound = "" if record["max_abs_error"] is None else f", |error| <= {record['max_abs_error']:g}"
    return (f"{hsic_path}: {record['bytes']} bytes, {record['bpppc']:.4f} bpppc, ratio "
            f"{record['compression_ratio']:.1f}:1 ({record['codec']} q{record['quality']}{bound})")


def _wavelengths(ds) -> tuple[np.ndarray | None, str]:
    """Band centre wavelengths and their unit, when every band has a numeric ``wavelength``."""
    values, unit = [], ""
    for i in range(ds.RasterCount):
        md = ds.GetRasterBand(i + 1).GetMetadata()
        try:
            values.append(float(md["wavelength"]))
        except (KeyError, ValueError):
            return None, ""
        unit = md.get("wavelength_units", unit)
    return np.asarray(values), unit


def psnr_plot_png(psnr_per_band: list[float], wavelengths: np.ndarray | None, unit: str) -> bytes:
    import matplotlib

    matplotlib.use("Agg")  # no display needed; QGIS's own Qt is left alone
    from matplotlib.figure import Figure

    y = np.asarray(psnr_per_band, dtype=float)
    x = np.arange(1, y.size + 1) if wavelengths is None else wavelengths
    fig = Figure(figsize=(8, 3.2), dpi=100)
    ax = fig.add_subplot()
    # Sensors with overlapping detectors (EnMAP VNIR/SWIR) are not monotonic in wavelength: sort for the line.
    order = np.argsort(x, kind="stable")
    ax.plot(x[order], np.where(np.isfinite(y), y, np.nan)[order], ".-", lw=1, ms=3)
    ax.set_xlabel(f"wavelength ({unit or 'unknown unit'})" if wavelengths is not None else "band")
    ax.set_ylabel("PSNR per band (dB)")
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def report_html(result: dict, plot_png: bytes) -> str:
    rows = "\n".join(f"<tr><th>{html.escape(label)}</th><td>{html.escape(fmt.format(result[key]))}</td></tr>"
                     for key, label, fmt in ROWS)
    finite = [v for v in result["psnr_per_band_db"] if math.isfinite(v)]
    note = (f"{len(finite)} of {len(result['psnr_per_band_db'])} bands have a finite PSNR (bands with no valid "
            "sample or no positive peak have none; perfect bands are infinite).")
    img = base64.b64encode(plot_png).decode("ascii")
    return f"""<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>HSIC evaluation</title>
<style>body{{font-family:sans-serif;margin:1.5em}} th{{text-align:left;padding-right:2em}}</style></head>
<body><h1>HSIC evaluation</h1>
<p>Reference: <code>{html.escape(result["reference"])}</code><br>
Candidate: <code>{html.escape(result["candidate"])}</code><br>
Shape (bands, rows, cols): {html.escape(str(tuple(result["shape"])))}</p>
<table>
{rows}
</table>
<h2>PSNR per band</h2>
<img alt="PSNR per band" src="data:image/png;base64,{img}">
<p>{html.escape(note)}</p>
</body></html>
"""


def _write_sam_tif(path: str, sam: np.ndarray, ref_ds) -> None:
    drv = gdal.GetDriverByName("GTiff")
    out = drv.Create(path, sam.shape[1], sam.shape[0], 1, gdal.GDT_Float32, ["COMPRESS=DEFLATE", "PREDICTOR=3"])
    if out is None:
        raise HSICIOError(f"{path}: cannot create GeoTIFF")
    out.SetGeoTransform(ref_ds.GetGeoTransform())
    if ref_ds.GetProjection():
        out.SetProjection(ref_ds.GetProjection())
    band = out.GetRasterBand(1)
    band.SetDescription("spectral angle (degrees)")
    band.SetNoDataValue(float("nan"))  # pixels without a defined angle (nodata, zero spectra)
    band.WriteArray(sam.astype(np.float32))
    band = None
    out = None


def write_report(reference: str, candidate: str, html_path: str | None = None, sam_path: str | None = None,
                 device: str = "auto", progress=None) -> dict:
    """Evaluate, then write the HTML report and/or the spectral-angle map. Returns the metrics.

    ``candidate`` may be a .hsic file, its sidecar (the rate is then the .hsic's) or any raster.
    """
    candidate = candidate_file(os.fspath(candidate))
    result = evaluate(reference, candidate, device=device, progress=progress, maps=True)
    sam = result.pop("sam_map")
    written: list[str] = []
    try:
        if sam_path:
            tmp = sam_path + ".partial.tif"
            written.append(tmp)
            _write_sam_tif(tmp, sam, Open(reference))
            os.replace(tmp, sam_path)
            written[-1] = sam_path
        if html_path:
            wl, unit = _wavelengths(Open(reference))
            tmp = html_path + ".partial"
            written.append(tmp)
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(report_html(result, psnr_plot_png(result["psnr_per_band_db"], wl, unit)))
            os.replace(tmp, html_path)
    except BaseException:
        for p in written:  # all or nothing
            if os.path.exists(p):
                os.remove(p)
        raise
    return result
