"""End to end: the launcher's qgis_process compresses a real scene; QGIS reopens the sidecar."""

import os
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from qgis.core import Qgis, QgsRasterLayer

pytestmark = pytest.mark.qgis

REPO = Path(__file__).resolve().parents[2]
LAUNCHER = REPO / ".venv" / "bin" / "qgis_process"
SCENE = REPO.parent / "shared" / "data" / "hsi" / "test" / "enmap_potsdam_c.tif"

NUMPY_TYPES = {
    Qgis.Byte: np.uint8,
    Qgis.UInt16: np.uint16,
    Qgis.Int16: np.int16,
    Qgis.UInt32: np.uint32,
    Qgis.Int32: np.int32,
    Qgis.Float32: np.float32,
    Qgis.Float64: np.float64,
}


def read_band(layer, band):
    """One whole band through the layer's data provider, as QGIS itself reads it."""
    w, h = layer.width(), layer.height()
    block = layer.dataProvider().block(band, layer.extent(), w, h)
    assert block.isValid(), f"QGIS could not read band {band}"
    return np.frombuffer(bytes(block.data()), dtype=NUMPY_TYPES[block.dataType()]).reshape(h, w)


@pytest.mark.skipif(not SCENE.exists(), reason=f"real scene {SCENE} is absent")
def test_qgis_process_compress_then_open_sidecar_in_qgis(qgis_app, tmp_path):
    assert LAUNCHER.exists(), f"{LAUNCHER} is missing: run scripts/setup.sh"
    # A copy: QGIS computes histograms of a layer it opens and GDAL saves them in a .aux.xml beside the
    # raster. Beside the shared scene, that file changed what later runs read as band metadata.
    scene = tmp_path / SCENE.name
    shutil.copyfile(SCENE, scene)
    out = tmp_path / "c.hsic"
    # A throw-away profile: the launcher must enable the plugin there by itself.
    env = {**os.environ, "QGIS_CUSTOM_CONFIG_PATH": str(tmp_path / "profile")}
    cmd = [str(LAUNCHER), "run", "hsic:compress", "--", f"INPUT={scene}", f"OUTPUT={out}"]
    proc = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"qgis_process failed ({proc.returncode}):\n{proc.stderr}\n{proc.stdout}"
    assert out.exists()

    import hsi_gdal  # allows the sidecar's Python pixel function in this process

    source = QgsRasterLayer(str(scene), "source", "gdal")
    layer = QgsRasterLayer(f"{out}.vrt", "compressed", "gdal")
    try:
        assert layer.isValid()
        assert layer.crs().authid() == "EPSG:32633"
        assert layer.extent() == source.extent()
        assert layer.bandCount() == 224

        ds = hsi_gdal.Open(str(out))
        decoded = ds.ReadAsArray()
        assert decoded.shape == (224, layer.height(), layer.width())
        provider, source_provider = layer.dataProvider(), source.dataProvider()
        for band in (1, 57, 224):
            # QGIS hands out values with the band's scale and offset applied (EnMAP: 1e-4 reflectance),
            # so the sidecar must carry the source's, and the decoder's integers are scaled the same way.
            scale, offset = provider.bandScale(band), provider.bandOffset(band)
            assert (scale, offset) == (source_provider.bandScale(band), source_provider.bandOffset(band))
            expected = decoded[band - 1] * scale + offset
            np.testing.assert_allclose(read_band(layer, band), expected, rtol=1e-6, err_msg=f"band {band}")
    finally:
        # QGIS segfaults at exit if raster layers outlive exitQgis().
        del source, layer
