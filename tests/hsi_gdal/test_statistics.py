"""Statistics and histograms declared in the sidecar (never in the .hsic, whose bytes are the rate): exact
for the source at compress time, of the decoded scene when the sidecar is rebuilt from the .hsic alone, and
served to GDAL and QGIS without decoding the scene or rewriting the sidecar."""

import hashlib
import json
import os
import subprocess
import xml.etree.ElementTree as ET

import numpy as np
import pytest
from osgeo import gdal

import hsi_gdal
from engine.format.container import Header, open_hsic
from engine.pipeline import SceneDecoder, compress_scene
from engine.statistics import BUCKETS, histogram_range, scene_statistics
from hsi_gdal import pixelfn
from hsi_gdal.sidecar import ensure_sidecar, style_path
from hsi_gdal.source import RasterSource
from hsi_gdal.style import cut_range, display_bands
from tests import fast_codec

BANDS = 30  # 400..690 nm in make_raster: true colour is bands 25 (640), 16 (550), 8 (470)


def _digest(path):
    return hashlib.sha256(open(path, "rb").read()).hexdigest()


@pytest.fixture(scope="module")
def stand_in():
    registered = fast_codec.install()
    yield fast_codec.CODEC_ID
    if registered:
        fast_codec.uninstall()


@pytest.fixture
def compressed(make_raster, tmp_path, stand_in):
    src = make_raster(bands=BANDS, rows=70, cols=90)
    ds = gdal.Open(src, gdal.GA_Update)
    b = ds.GetRasterBand(3)
    a = b.ReadAsArray()
    a[:10, :20] = -32768  # some no-data in band 3
    b.WriteArray(a)
    del b
    ds = None
    dst = str(tmp_path / "c.hsic")
    hsi_gdal.Translate(dst, src, codec=stand_in)
    data = gdal.Open(src).ReadAsArray()
    return dst, data, src


def declared(vrt):
    """The per-band statistics the sidecar declares, read back from its XML."""
    out = []
    for band in ET.parse(vrt).getroot().iter("VRTRasterBand"):
        md = {m.get("key"): float(m.text) for m in band.iter("MDI") if m.get("key").startswith("STATISTICS_")}
        item = band.find("Histograms/HistItem")
        if not md:
            out.append({})
            continue
        out.append({"min": md["STATISTICS_MINIMUM"], "max": md["STATISTICS_MAXIMUM"], "mean": md["STATISTICS_MEAN"],
                    "std": md["STATISTICS_STDDEV"], "valid_percent": md["STATISTICS_VALID_PERCENT"],
                    "histogram": {"min": float(item.find("HistMin").text), "max": float(item.find("HistMax").text),
                                  "counts": [int(c) for c in item.find("HistCounts").text.split("|")]}})
    return out


def assert_statistics_of(stats, data, nodata=-32768):
    assert len(stats) == len(data)
    for b, s in enumerate(stats):
        v = data[b][data[b] != nodata].astype(np.float64)
        assert (s["min"], s["max"]) == (v.min(), v.max())
        assert s["mean"] == pytest.approx(v.mean(), rel=1e-6)
        assert s["std"] == pytest.approx(v.std(), rel=1e-6)
        assert s["valid_percent"] == pytest.approx(100 * v.size / data[b].size, rel=1e-6)
        h = s["histogram"]
        assert (h["min"], h["max"]) == histogram_range(v.min(), v.max())
        want = np.clip(((v - h["min"]) / (h["max"] - h["min"]) * BUCKETS).astype(int), 0, BUCKETS - 1)
        assert h["counts"] == np.bincount(want, minlength=BUCKETS).tolist()


def test_sidecar_declares_the_source_statistics(compressed):
    dst, data, _ = compressed
    stats = declared(dst + ".vrt")
    assert_statistics_of(stats, data)
    assert stats[2]["valid_percent"] < 100 and stats[0]["valid_percent"] == 100


def test_hsic_holds_no_statistics(compressed, tmp_path, stand_in):
    """The .hsic has exactly the bytes of compress_scene alone: statistics cost the rate nothing."""
    dst, _, src = compressed
    plain = str(tmp_path / "plain.hsic")
    source = RasterSource(src)
    compress_scene(source.info, source.read_window, plain, stand_in, None)
    assert open(dst, "rb").read() == open(plain, "rb").read()


def test_sidecar_rebuilt_from_the_hsic_declares_the_decoded_statistics(compressed):
    dst, _, _ = compressed
    os.remove(dst + ".vrt")
    os.remove(style_path(dst))
    vrt, _, written = ensure_sidecar(dst)
    assert written and os.path.isfile(style_path(dst))
    dec = SceneDecoder(dst)
    decoded = dec.read()
    dec.close()
    assert_statistics_of(declared(vrt), decoded)
    before = _digest(vrt)
    assert ensure_sidecar(dst)[2] is False and _digest(vrt) == before


def test_empty_band_and_windows_of_any_shape():
    cube = np.full((2, 5, 7), -1.0)
    cube[0, 1:3, 2:6] = [[1, 2, 3, 4], [5, 6, 7, 8]]
    stats = scene_statistics(2, -1.0, lambda y, x, h, w: cube[:, y:y + h, x:x + w],
                             [(0, 0, 3, 4), (0, 4, 3, 3), (3, 0, 2, 7)])
    assert stats[1] == {}
    assert (stats[0]["min"], stats[0]["max"], stats[0]["mean"]) == (1, 8, 4.5)
    assert sum(stats[0]["histogram"]["counts"]) == 8


def test_gdal_reads_declared_statistics_without_decoding_or_rewriting(compressed):
    dst, data, _ = compressed
    vrt = dst + ".vrt"
    before = _digest(vrt)
    dec = pixelfn.decoder_for(dst)
    decoded = dec.decoded_tiles
    ds = gdal.Open(vrt)
    band = ds.GetRasterBand(3)
    v = data[2][data[2] != -32768]
    mn, mx, mean, std = band.GetStatistics(0, 1)  # exact statistics asked for: what gdalinfo -stats does
    assert (mn, mx) == (v.min(), v.max()) and mean == pytest.approx(v.mean(), rel=1e-6)
    lo, hi, n, counts = band.GetDefaultHistogram(force=1)
    assert n == BUCKETS and sum(counts) == v.size
    del band
    ds = None
    assert dec.decoded_tiles == decoded
    assert _digest(vrt) == before


def test_gdalinfo_stats_leaves_the_sidecar_alone(compressed, tmp_path):
    dst, _, _ = compressed
    vrt = dst + ".vrt"
    before = _digest(vrt)
    env = dict(os.environ, GDAL_VRT_PYTHON_TRUSTED_MODULES="hsi_gdal.pixelfn")
    out = subprocess.run(["gdalinfo", "-stats", "-hist", vrt], capture_output=True, text=True, env=env,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    assert "STATISTICS_MEAN" in out.stdout and "buckets" in out.stdout
    assert _digest(vrt) == before
    assert not os.path.exists(vrt + ".aux.xml")


def test_a_statistics_key_in_a_header_is_an_unknown_key(compressed):
    dst, _, _ = compressed
    with open_hsic(dst) as r:
        h = r.header
    d = h.to_dict()
    assert "statistics" not in d
    d["statistics"] = [{}] * h.bands  # never released; read like any key a newer minor version may add
    assert Header.from_json_bytes(json.dumps(d).encode()) == h


def test_style_shows_true_colour_stretched_from_the_histogram(compressed):
    dst, data, _ = compressed
    with open_hsic(dst) as r:
        h = r.header
    assert display_bands(h) == [25, 16, 8]
    qml = open(style_path(dst)).read()
    assert 'redBand="25"' in qml and 'greenBand="16"' in qml and 'blueBand="8"' in qml
    stats = declared(dst + ".vrt")[24]
    lo, hi = cut_range(stats)
    v = data[24].astype(np.float64)
    width = stats["histogram"]["max"] - stats["histogram"]["min"]
    assert abs(lo - np.quantile(v, 0.02)) <= width / BUCKETS and abs(hi - np.quantile(v, 0.98)) <= width / BUCKETS


@pytest.mark.qgis
def test_qgis_opens_renders_and_computes_statistics_without_rewriting(compressed, qgis_app):
    from qgis.core import QgsMapRendererSequentialJob, QgsMapSettings, QgsRasterBandStats, QgsRasterLayer
    from qgis.PyQt.QtCore import QSize

    dst, data, _ = compressed
    vrt = dst + ".vrt"
    before = _digest(vrt)
    dec = pixelfn.decoder_for(dst)
    dec.set_cache_bytes(0)
    decoded = dec.decoded_tiles
    layer = QgsRasterLayer(vrt, "c")
    assert layer.isValid()
    r = layer.renderer()
    assert (r.redBand(), r.greenBand(), r.blueBand()) == (25, 16, 8)   # from the default style
    assert dec.decoded_tiles == decoded   # adding the layer decoded nothing
    stats = QgsRasterBandStats.Min | QgsRasterBandStats.Max | QgsRasterBandStats.Mean | QgsRasterBandStats.StdDev
    st = layer.dataProvider().bandStatistics(3, stats)
    v = data[2][data[2] != -32768]
    # QGIS shows values with the band's scale applied (1e-4 in make_raster)
    assert (st.minimumValue, st.maximumValue) == pytest.approx((v.min() * 1e-4, v.max() * 1e-4), rel=1e-6)
    assert dec.decoded_tiles == decoded
    ms = QgsMapSettings()
    ms.setLayers([layer])
    ms.setExtent(layer.extent())
    ms.setOutputSize(QSize(64, 48))
    job = QgsMapRendererSequentialJob(ms)
    job.start()
    job.waitForFinished()
    img = job.renderedImage()
    assert img.pixelColor(32, 24).alpha() == 255
    del job, layer
    dec.set_cache_bytes(256 << 20)
    assert _digest(vrt) == before
