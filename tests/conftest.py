import gc
import os

# Before anything imports qgis: without a display, Qt aborts unless it renders offscreen.
os.environ["QT_QPA_PLATFORM"] = "offscreen"

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data" / "hsi"
SAMPLE = ROOT / "hsi_gdal" / "sample" / "enmap_potsdam_sample.tif"


@pytest.fixture(autouse=True, scope="session")
def _free_qgis_objects_before_qgis_exits(qgis_app):
    """Python wrappers of QGIS objects (layers, providers) left in reference cycles must be freed while
    QGIS is alive: pytest-qgis calls exitQgis() when its session fixture ends, and pytest collects
    garbage once more at the very end, where freeing them segfaulted the whole run (exit 139)."""
    yield
    if qgis_app is not None:
        from qgis.core import QgsProject

        QgsProject.instance().removeAllMapLayers()
    gc.collect()


def _aux_files() -> set[Path]:
    return set(DATA.rglob("*.aux.xml")) if DATA.is_dir() else set()


@pytest.fixture(autouse=True, scope="session")
def _shared_data_stays_untouched():
    """The shared data is read only: a test that opened a scene in QGIS once left a .aux.xml (QGIS's
    histograms, saved by GDAL) beside it, which later runs read as band metadata."""
    before = _aux_files()
    yield
    new = sorted(_aux_files() - before)
    for path in new:
        path.unlink()  # restore the data for the next run, then fail
    assert not new, f"tests wrote {[str(p) for p in new]} into the shared data"


def shared_scenes(split: str) -> list[Path]:
    """Scenes of ../shared/data/hsi/<split>; the caller skips when the list is empty."""
    return sorted((DATA / split).glob("*.tif")) if (DATA / split).is_dir() else []


@pytest.fixture
def make_raster(tmp_path):
    """Write a small georeferenced GeoTIFF with hyperspectral-style metadata; returns its path."""
    from osgeo import gdal, osr

    def make(name="cube.tif", bands=12, rows=40, cols=30, dtype="int16", nodata=-32768, data=None, seed=0):
        rng = np.random.default_rng(seed)
        if data is None:
            # Smooth spectra (a few broad components), like real reflectance, plus noise.
            wl = np.linspace(0, 1, bands)[:, None, None]
            a = rng.uniform(0.1, 0.5, (1, rows, cols))
            b = rng.uniform(-0.2, 0.2, (1, rows, cols))
            data = 4000 * (a + b * np.sin(3 * wl)) + rng.normal(0, 20, (bands, rows, cols))
            data = data.astype(dtype)
        bands, rows, cols = data.shape
        path = str(tmp_path / name)
        gtype = {"int16": gdal.GDT_Int16, "uint16": gdal.GDT_UInt16, "float32": gdal.GDT_Float32,
                 "uint8": gdal.GDT_Byte, "int32": gdal.GDT_Int32, "float64": gdal.GDT_Float64}[str(data.dtype)]
        ds = gdal.GetDriverByName("GTiff").Create(path, cols, rows, bands, gtype)
        ds.SetGeoTransform((365055.0, 30.0, 0.0, 5807085.0, 0.0, -30.0))
        srs = osr.SpatialReference()
        srs.ImportFromEPSG(32633)
        ds.SetProjection(srs.ExportToWkt())
        ds.SetMetadata({"SENSOR": "test"})
        for i in range(bands):
            band = ds.GetRasterBand(i + 1)
            band.WriteArray(data[i])
            band.SetDescription(f"band {i + 1} ({400 + 10 * i} Nanometers)")
            band.SetMetadata({"wavelength": str(400 + 10 * i), "wavelength_units": "Nanometers",
                              "fwhm": "7.5", "bbl": "1"})
            if nodata is not None:
                band.SetNoDataValue(nodata)
            band.SetScale(1e-4)
            band.SetOffset(0.0)
            del band
        ds = None
        return path

    return make
