"""`make demo`: compress the bundled EnMAP sample, reopen it through GDAL and QGIS, print the figures."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SAMPLE = ROOT / "hsi_gdal" / "sample" / "enmap_potsdam_sample.tif"
OUT = ROOT / "out" / "demo"


def main() -> int:
    import hsi_gdal
    from osgeo import gdal, osr

    OUT.mkdir(parents=True, exist_ok=True)
    dst = OUT / "sample.hsic"
    print(f"compressing {SAMPLE.relative_to(ROOT)} with the default codec ...")
    ds = hsi_gdal.Translate(str(dst), str(SAMPLE))
    h = ds.header
    r = hsi_gdal.evaluate(str(SAMPLE), str(dst))
    src_size = SAMPLE.stat().st_size
    print(f"  codec                     {h.codec} quality {h.quality}")
    print(f"  written                   {r['bytes']} bytes ({dst.relative_to(ROOT)}, header included)")
    print(f"  rate                      {r['bpppc']:.4f} bits per pixel per channel")
    print(f"  ratio vs raw {h.dtype:<10s}  {r['compression_ratio']:.1f} : 1")
    print(f"  ratio vs source GeoTIFF   {src_size / r['bytes']:.1f} : 1 (its DEFLATE file is {src_size} bytes)")
    print(f"  PSNR (data-range peak)    {r['psnr_db']:.2f} dB")
    print(f"  PSNR (per-band peak)      {r['psnr_band_peak_db']:.2f} dB")
    print(f"  SSIM                      {r['ssim']:.4f}")
    print(f"  SAM                       {r['sam_deg']:.3f} deg")
    print("  (the sample comes from the training area; figures on unseen test scenes are in README)")

    vrt = str(dst) + ".vrt"
    g = gdal.Open(vrt)
    srs = osr.SpatialReference(wkt=g.GetProjection())
    srs.AutoIdentifyEPSG()
    gt = g.GetGeoTransform()
    extent = (gt[0], gt[3] + gt[5] * g.RasterYSize, gt[0] + gt[1] * g.RasterXSize, gt[3])
    b = g.GetRasterBand(50)
    print(f"reopened through GDAL ({Path(vrt).name}):")
    print(f"  CRS EPSG:{srs.GetAuthorityCode(None)}, {g.RasterCount} bands, {g.RasterXSize} x {g.RasterYSize} px")
    print(f"  extent (xmin, ymin, xmax, ymax) {extent}")
    print(f"  band 50: {b.GetDescription()!r}, wavelength {b.GetMetadataItem('wavelength')} "
          f"{b.GetMetadataItem('wavelength_units')}, mean {b.ComputeStatistics(False)[2]:.1f}")
    del b, g

    qp = ROOT / ".venv" / "bin" / "qgis_process"
    env = dict(os.environ, QT_QPA_PLATFORM=os.environ.get("QT_QPA_PLATFORM", "offscreen"))
    print("reopened through QGIS (qgis_process, the sidecar as a raster layer):")
    wanted = ("CRS_AUTHID", "EXTENT", "BAND_COUNT", "WIDTH_IN_PIXELS", "HEIGHT_IN_PIXELS", "MEAN", "MIN", "MAX")
    for alg in ("native:rasterlayerproperties", "native:rasterlayerstatistics"):
        run = subprocess.run([str(qp), "run", alg, "--", f"INPUT={vrt}", "BAND=50"],
                             capture_output=True, text=True, env=env)
        if run.returncode != 0:
            print(f"{alg} failed:", run.stdout[-2000:], run.stderr[-2000:], file=sys.stderr)
            return 1
        for line in run.stdout.splitlines():
            if line.split(":")[0].strip() in wanted:
                print("  " + line.strip() + ("  (band 50, scaled)" if alg.endswith("statistics") else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
