"""Round trip of every real scene in ../shared/data/hsi (skipped with a reason when it is absent)."""

import os

import numpy as np
import pytest

import hsi_gdal
from tests.conftest import DATA, SAMPLE, shared_scenes
from tests.quality_floors import floor

SCENES = shared_scenes("train") + shared_scenes("test")


@pytest.mark.slow
@pytest.mark.parametrize("path", SCENES or [None], ids=lambda p: p.name if p else "absent")
def test_round_trip_keeps_shape_type_nodata_metadata(path, tmp_path):
    if path is None:
        pytest.skip(f"shared data not found at {DATA}")
    src = hsi_gdal.Open(str(path))
    out = hsi_gdal.Translate(str(tmp_path / "x.hsic"), str(path))
    assert (out.RasterCount, out.RasterYSize, out.RasterXSize) == (src.RasterCount, src.RasterYSize, src.RasterXSize)
    assert out.dtype == src.dtype
    assert out.GetGeoTransform() == src.GetGeoTransform() and out.GetProjection() == src.GetProjection()
    assert out.GetMetadata() == src.GetMetadata()
    for i in range(1, src.RasterCount + 1):
        a, b = src.GetRasterBand(i), out.GetRasterBand(i)
        assert a.GetDescription() == b.GetDescription() and a.GetMetadata() == b.GetMetadata()
        assert a.GetScale() == b.GetScale() and a.GetOffset() == b.GetOffset()
        assert a.GetNoDataValue() == b.GetNoDataValue()
    ref, dec = src.ReadAsArray(), out.ReadAsArray()
    assert dec.shape == ref.shape and dec.dtype == ref.dtype
    nodata = src.GetRasterBand(1).GetNoDataValue()
    if nodata is not None:
        np.testing.assert_array_equal(dec == nodata, ref == nodata)
    if path.parent.name == "train":
        # In-sample sanity bound only: test-split figures are measured and reported, not asserted here.
        r = hsi_gdal.evaluate(str(path), str(tmp_path / "x.hsic"))
        # Measured 2026-12-03 at the default quality: 42.5-51.7 dB over the train scenes.
        assert r["psnr_db"] > 41.5 and r["bpppc"] < 1.6, r


def test_default_quality_meets_the_foundation_target(tmp_path):
    """enmap_potsdam_c at the default quality: >= 40 dB (data-range peak) at <= 1 true bpppc."""
    path = DATA / "test" / "enmap_potsdam_c.tif"
    if not path.exists():
        pytest.skip(f"{path} not found")
    hsi_gdal.Translate(str(tmp_path / "c.hsic"), str(path))
    r = hsi_gdal.evaluate(str(path), str(tmp_path / "c.hsic"))
    assert r["psnr_db"] >= 40 and r["bpppc"] <= 1.0, r
    assert r["bpppc"] == os.path.getsize(tmp_path / "c.hsic") * 8 / (224 * 128 * 64)

    from osgeo import gdal, osr

    g = gdal.Open(str(tmp_path / "c.hsic.vrt"))
    srs = osr.SpatialReference(wkt=g.GetProjection())
    srs.AutoIdentifyEPSG()
    src = gdal.Open(str(path))
    assert g.RasterCount == 224 and srs.GetAuthorityCode(None) == "32633"
    for i in (1, 100, 224):
        assert g.GetRasterBand(i).GetMetadataItem("wavelength") == src.GetRasterBand(i).GetMetadataItem("wavelength")
    del g, src


def test_bundled_sample_has_what_the_demo_shows():
    from osgeo import gdal

    g = gdal.Open(str(SAMPLE))
    assert g.RasterCount == 224 and "UTM zone 33N" in g.GetProjection()
    del g


TEST_SCENES = shared_scenes("test")


CONTINUOUS_TARGET = 0.25


def continuous_target(codec: str, scene: str) -> float:
    """The bench target a continuous-rate codec is checked at on ``scene``: 0.25 bpppc, or the lowest
    target above it that the bench reached (a 10 x 10 scene's header alone is more than 0.25 bpppc)."""
    from tests.quality_floors import load

    reached = sorted(float(k.split("=")[1]) for k in load()["floors"].get(codec, {}).get(scene, {}))
    above = [t for t in reached if t >= CONTINUOUS_TARGET]
    if not above:
        pytest.fail(f"no bench target at or above {CONTINUOUS_TARGET} bpppc for {codec} on {scene} in floors.json")
    return above[0]


@pytest.mark.slow
@pytest.mark.parametrize("path", TEST_SCENES or [None], ids=lambda p: p.name if p else "absent")
def test_every_codec_compresses_and_decompresses_every_test_scene(path, tmp_path):
    """`hsic compress` / `hsic decompress` for every registered codec at its default quality."""
    if path is None:
        pytest.skip(f"shared data not found at {DATA}")
    from engine.registry import codec_class, list_codecs
    from hsi_gdal.tools.cli import main

    src = hsi_gdal.Open(str(path))
    for info in list_codecs():
        hsic, tif = tmp_path / f"{info.id}.hsic", tmp_path / f"{info.id}.tif"
        # A codec with a continuous rate is checked at the bench's 0.25 bpppc target, the others at their
        # default quality.
        continuous = codec_class(info.id).continuous_rate
        target = continuous_target(info.id, path.stem) if continuous else None
        setting = ["--bpppc", f"{target:g}"] if continuous else []
        assert main(["compress", str(path), str(hsic), "--codec", info.id, *setting, "--device", "cpu", "-q"]) == 0
        assert main(["decompress", str(hsic), str(tif), "--device", "cpu", "-q"]) == 0
        out = hsi_gdal.Open(str(tif))
        assert (out.RasterCount, out.RasterYSize, out.RasterXSize) == (src.RasterCount, src.RasterYSize,
                                                                       src.RasterXSize)
        assert out.dtype == src.dtype
        dec = out.ReadAsArray()
        if not src.dtype.startswith("float"):
            assert np.isfinite(dec).all()
        # The floors are what the committed bench measured on the same whole scene, less a margin
        # (tests/floors.json, scripts/floors.py): a regression in any codec shows here.
        want = floor(info.id, path.stem, f"bpppc={target:g}" if continuous else info.default_quality)
        r = hsi_gdal.evaluate(str(path), str(tif))
        assert r["psnr_db"] >= want["min_psnr_db"] and r["sam_deg"] <= want["max_sam_deg"], \
            (info.id, path.stem, r["psnr_db"], r["sam_deg"], want)
        del out


def test_floor_table_covers_every_codec_and_quality_and_matches_the_bench():
    """A codec or quality added later has no floor until the bench is re-run: that fails here, not silently."""
    import subprocess
    import sys

    from engine.registry import codec_class, list_codecs
    from tests.conftest import ROOT
    from tests.quality_floors import load

    table = load()
    scenes = sorted({s for per_scene in table["floors"].values() for s in per_scene})
    assert len(scenes) == 7, scenes
    for info in list_codecs():
        for scene in scenes:
            keys = ([f"bpppc={continuous_target(info.id, scene):g}"] if codec_class(info.id).continuous_rate
                    else info.qualities)
            for q in keys:
                want = floor(info.id, scene, q)
                assert want["min_psnr_db"] < want["psnr_db"] and want["max_sam_deg"] > want["sam_deg"]
    # The table is what scripts/floors.py makes of the committed bench, not a hand edit.
    done = subprocess.run([sys.executable, str(ROOT / "scripts" / "floors.py"), "--check"],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
