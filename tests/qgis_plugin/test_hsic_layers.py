""".hsic files open like rasters in the desktop: the Browser lists them, a drop or a Browser item opens the
sidecar (written if missing), iface.addRasterLayer takes a .hsic path, and failures are one message line.
The desktop's own calls are replaced by direct calls of the hooks QGIS makes (no iface here)."""

import os

import pytest
from qgis.core import QgsApplication, QgsLayerItem, QgsMimeDataUtils, QgsProject, QgsProviderRegistry
from qgis.gui import QgsGui

from conftest import FakeIface
from qgis_plugin import classFactory
from qgis_plugin.hsic_layers import HsicDropHandler, HsicItemGuiProvider, HsicSublayers

pytestmark = pytest.mark.qgis


@pytest.fixture
def hsic(qgis_app, make_raster, tmp_path):
    """A .hsic without its sidecar (as after copying only the .hsic)."""
    import hsi_gdal

    hsi_gdal.Translate(str(tmp_path / "c.hsic"), make_raster("s.tif", bands=6, rows=50, cols=40), device="cpu")
    os.remove(tmp_path / "c.hsic.vrt")
    yield str(tmp_path / "c.hsic")
    QgsProject.instance().removeAllMapLayers()


def added_layers():
    return {layer.name(): layer for layer in QgsProject.instance().mapLayers().values()}


def browser_item(path):
    """The item QGIS's own file provider (the Browser's) makes for ``path``."""
    (files,) = [p for p in QgsApplication.dataItemProviderRegistry().providers() if p.name() == "files"]
    return files.createDataItem(path, None)


def test_the_browser_lists_hsic_files_as_raster_items_of_their_sidecar(hsic, tmp_path):
    iface = FakeIface()
    plugin = classFactory(iface)
    plugin.initGui()
    try:
        (layer,) = QgsProviderRegistry.instance().querySublayers(hsic)
        assert (layer.providerKey(), layer.uri(), layer.name()) == ("gdal", hsic + ".vrt", "c.hsic")
        item = browser_item(hsic)
        assert isinstance(item, QgsLayerItem) and item.name() == "c.hsic"
        (uri,) = item.mimeUris()  # what a drag hands to QGIS, which opens it with GDAL
        assert (uri.layerType, uri.providerKey, uri.uri, uri.name) == ("raster", "gdal", hsic + ".vrt", "c.hsic")
        assert browser_item(str(tmp_path / "s.tif")).name() == "s.tif"  # other files as before
        assert "HSIC" in [p.name() for p in QgsGui.dataItemGuiProviderRegistry().providers()]
    finally:
        plugin.unload()
    assert QgsProviderRegistry.instance().querySublayers(hsic) == [] and browser_item(hsic) is None
    assert "HSIC" not in [p.name() for p in QgsGui.dataItemGuiProviderRegistry().providers()]
    assert iface.handlers == []


def test_a_double_clicked_item_opens_with_its_sidecar_written_if_missing(hsic, tmp_path):
    iface = FakeIface()
    clicks = HsicItemGuiProvider(iface)
    HsicSublayers.register()
    try:
        item = browser_item(hsic)
    finally:
        HsicSublayers.enabled = False
    assert clicks.handleDoubleClick(item, None) is True
    assert os.path.isfile(hsic + ".vrt") and os.path.isfile(hsic + ".qml")
    layer = added_layers()["c.hsic"]
    assert layer.isValid() and layer.source() == hsic + ".vrt" and layer.bandCount() == 6
    assert layer.crs().authid() == "EPSG:32633" and iface.messages == []
    assert clicks.handleDoubleClick(browser_item(str(tmp_path / "s.tif")), None) is False  # QGIS opens it
    assert clicks.handleDoubleClick(browser_item(hsic + ".vrt"), None) is False  # the sidecar's own item


def test_a_dragged_item_gets_its_missing_sidecar_before_qgis_opens_it(hsic):
    HsicSublayers.register()
    try:
        data = QgsMimeDataUtils.encodeUriList(browser_item(hsic).mimeUris())
    finally:
        HsicSublayers.enabled = False
    assert HsicDropHandler(FakeIface()).handleMimeDataV2(data) is False  # QGIS then opens the URI itself
    assert os.path.isfile(hsic + ".vrt")


def test_a_file_dropped_from_a_file_manager_opens(hsic, tmp_path):
    iface = FakeIface()
    handler = HsicDropHandler(iface)
    assert handler.handleFileDrop(str(tmp_path / "s.tif")) is False  # not ours: QGIS opens it
    assert handler.handleFileDrop(hsic) is True
    assert added_layers()["c.hsic"].isValid() and iface.messages == []


def test_add_raster_layer_takes_a_hsic_path_and_passes_the_rest_on(hsic, tmp_path):
    iface = FakeIface()
    plugin = classFactory(iface)
    plugin.initGui()
    try:
        layer = iface.addRasterLayer(hsic, "my scene")
        assert layer.isValid() and layer.name() == "my scene" and layer.source() == hsic + ".vrt"
        assert iface.addRasterLayer(hsic).name() == "c.hsic"
        tif = str(tmp_path / "s.tif")
        assert iface.addRasterLayer(tif, "t") == ("QGIS", tif, "t", "gdal")
        assert iface.addRasterLayer(hsic, "x", "other")[0] == "QGIS"  # another provider asked for: not ours
    finally:
        plugin.unload()
    assert "addRasterLayer" not in vars(iface) and iface.addRasterLayer(hsic)[0] == "QGIS"


def test_a_file_that_cannot_open_gives_one_message_line_and_no_layer(hsic, tmp_path):
    bad = tmp_path / "bad.hsic"
    bad.write_bytes(b"not a hsic file at all")
    iface = FakeIface()
    assert HsicDropHandler(iface).handleFileDrop(str(bad)) is True
    assert "bad.hsic" not in added_layers() and not os.path.exists(str(bad) + ".vrt")
    ((_, message),) = iface.messages
    assert message.startswith(f"cannot open {bad}: ") and "\n" not in message
