"""``.hsic`` files open like any raster in the QGIS desktop: listed in the Browser, dropped on the map or the
window, and given to ``iface.addRasterLayer``. Each opens as its georeferenced sidecar ``X.hsic.vrt``
(through GDAL, like ``hsic:open``), which is written first if it is missing.

QGIS 3.22 has no hook that teaches its GDAL provider a new file type (GDAL's Python drivers are
vector-only), so each way in has its own hook: a Browser item provider (items whose URI is the sidecar's),
a Browser GUI provider for double-clicks, a custom drop handler for files dropped from a file manager and
for Browser items whose sidecar is missing, and a wrapper around ``iface.addRasterLayer`` for Python
callers (the console, other plugins), since that call has no hook.
Failures are one line in the message bar, never a traceback or an empty layer.
"""

from __future__ import annotations

import os

from qgis.core import (Qgis, QgsApplication, QgsDataItemProvider, QgsDataProvider, QgsLayerItem, QgsMessageLog,
                       QgsMimeDataUtils, QgsProject, QgsRasterLayer)
from qgis.gui import QgsCustomDropHandler, QgsDataItemGuiProvider, QgsGui

from engine.errors import HSICError
from qgis_plugin import deps


def is_hsic(path) -> bool:
    return isinstance(path, str) and path.lower().endswith(".hsic")


def ensure_sidecar(path: str) -> str:
    """The sidecar of a .hsic file, written if missing, with GDAL allowed to run its decoder (HSICError
    when the file is damaged, its weights missing, or HSIC's packages absent)."""
    missing = deps.missing()
    if missing:
        raise HSICError(deps.message(missing))
    import hsi_gdal

    vrt, _, _ = hsi_gdal.ensure_sidecar(path)
    hsi_gdal.allow_decoder()  # GDAL runs the sidecar's pixel function only from a trusted module
    return vrt


def hsic_layer(path: str, name: str | None = None) -> QgsRasterLayer:
    """The raster layer of a .hsic file: its sidecar, written if missing (HSICError if it cannot open)."""
    vrt = ensure_sidecar(path)
    layer = QgsRasterLayer(vrt, name or os.path.basename(path), "gdal")
    if not layer.isValid():
        raise HSICError(f"{vrt}: GDAL cannot open the sidecar ({layer.error().summary() or 'no reason given'})")
    return layer


def report(path: str, error: HSICError, iface) -> None:
    """One line in the log and the message bar: the file that did not open, and why."""
    text = f"cannot open {path}: {error}"
    QgsMessageLog.logMessage(text, "HSIC", Qgis.Critical)
    if iface is not None:
        iface.messageBar().pushMessage("HSIC", text, Qgis.Critical, 0)


def prepare_sidecar(path: str, iface=None) -> bool:
    """:func:`ensure_sidecar`, reporting a failure instead of raising; whether the sidecar is there."""
    try:
        ensure_sidecar(path)
    except HSICError as e:
        report(path, e, iface)
        return False
    return True


def add_hsic_layer(path: str, name: str | None = None, iface=None) -> QgsRasterLayer | None:
    """Add a .hsic file to the project as a raster layer; None, with one line in the message bar, if it
    cannot be opened."""
    try:
        layer = hsic_layer(path, name)
    except HSICError as e:
        report(path, e, iface)
        return None
    QgsProject.instance().addMapLayer(layer)
    return layer


def hsic_item(parent, path: str) -> QgsLayerItem:
    """The Browser item of a .hsic file: a plain raster item whose URI is the GDAL URI of its sidecar, so
    that QGIS opens it by itself when dragged (a Python subclass would lose its overrides: PyQGIS frees the
    Python half of items returned to the Browser, qgis/QGIS#49720)."""
    item = QgsLayerItem(parent, os.path.basename(path), path, sidecar_path(path), QgsLayerItem.Raster, "gdal")
    item.setToolTip(f"{path}\nHSIC compressed raster, opens through its sidecar {os.path.basename(path)}.vrt")
    return item


def sidecar_path(path: str) -> str:
    return path + ".vrt"


class HsicItemProvider(QgsDataItemProvider):
    """Lists .hsic files in the Browser. Their sidecars ``X.hsic.vrt`` stay listed too, by QGIS's GDAL
    provider (a plugin cannot filter another provider's items); both open the same layer."""

    def name(self) -> str:
        return "HSIC"

    def capabilities(self):
        return QgsDataProvider.File

    def createDataItem(self, path, parent):  # noqa: N802
        return hsic_item(parent, path) if is_hsic(path) and os.path.isfile(path) else None


class HsicItemGuiProvider(QgsDataItemGuiProvider):
    """A double-click on a .hsic item opens it through :func:`add_hsic_layer` (which writes a missing
    sidecar; QGIS's own handling would open only an existing one)."""

    def __init__(self, iface=None):
        super().__init__()
        self.iface = iface

    def name(self) -> str:
        return "HSIC"

    def handleDoubleClick(self, item, context) -> bool:  # noqa: N802
        if not (isinstance(item, QgsLayerItem) and is_hsic(item.path())):
            return False
        add_hsic_layer(item.path(), item.name(), self.iface)
        return True


class HsicDropHandler(QgsCustomDropHandler):
    """Opens .hsic files dropped from a file manager, and writes the missing sidecar of a .hsic item
    dragged from the Browser before QGIS opens that sidecar."""

    def __init__(self, iface=None):
        super().__init__()
        self.iface = iface

    def handleMimeDataV2(self, data) -> bool:  # noqa: N802
        if QgsMimeDataUtils.isUriList(data):
            for uri in QgsMimeDataUtils.decodeUriList(data):
                hsic = uri.uri[:-len(".vrt")]
                if is_hsic(hsic) and not os.path.isfile(uri.uri) and os.path.isfile(hsic):
                    prepare_sidecar(hsic, self.iface)
        return False  # QGIS goes on and opens the dropped URIs itself

    def handleFileDrop(self, file: str) -> bool:  # noqa: N802
        if not is_hsic(file):
            return False  # not ours: QGIS opens it as usual
        add_hsic_layer(file, None, self.iface)
        return True


class HsicFiles:
    """The desktop hooks that make .hsic files open like rasters; ``register`` in initGui, ``unregister``
    in unload."""

    def __init__(self, iface):
        self.iface = iface
        self.items = HsicItemProvider()
        self.clicks = HsicItemGuiProvider(iface)
        self.drops = HsicDropHandler(iface)
        self.original_add_raster_layer = None

    def add_raster_layer(self, path, *args):
        """``iface.addRasterLayer`` that opens a .hsic path (with the GDAL provider, the default) through
        its sidecar, and passes anything else on unchanged."""
        if is_hsic(path) and (len(args) < 2 or args[1] == "gdal"):
            return add_hsic_layer(path, (args[0] if args else "") or None, self.iface)
        return self.original_add_raster_layer(path, *args)

    def register(self) -> None:
        QgsApplication.dataItemProviderRegistry().addProvider(self.items)
        QgsGui.dataItemGuiProviderRegistry().addProvider(self.clicks)
        self.iface.registerCustomDropHandler(self.drops)
        # An attribute of this iface object shadows the class's method for Python callers only.
        self.original_add_raster_layer = self.iface.addRasterLayer
        self.iface.addRasterLayer = self.add_raster_layer

    def unregister(self) -> None:
        QgsApplication.dataItemProviderRegistry().removeProvider(self.items)
        QgsGui.dataItemGuiProviderRegistry().removeProvider(self.clicks)
        self.iface.unregisterCustomDropHandler(self.drops)
        if "addRasterLayer" in vars(self.iface):
            del self.iface.addRasterLayer
