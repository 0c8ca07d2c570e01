"""``.hsic`` files open like any raster in the QGIS desktop: listed in the Browser, dropped on the map or the
window, and given to ``iface.addRasterLayer``. Each opens as its georeferenced sidecar ``X.hsic.vrt``
(through GDAL, like ``hsic:open``), which is written first if it is missing.

QGIS 3.22 has no hook that teaches its GDAL provider a file type (GDAL's Python drivers are
vector-only), so each way in has its own hook: provider metadata that tells QGIS's file scanning a .hsic
holds one layer, its sidecar (the Browser lists it), a Browser GUI provider for double-clicks, a custom
drop handler for files dropped from a file manager and for Browser items whose sidecar is missing, and a
wrapper around ``iface.addRasterLayer`` for Python callers (the console, other plugins), since that call
has no hook.
Failures are one line in the message bar, never a traceback or an empty layer.
"""

from __future__ import annotations

import os

from qgis.core import (Qgis, QgsLayerItem, QgsMapLayerType, QgsMessageLog, QgsMimeDataUtils, QgsProject,
                       QgsProviderMetadata, QgsProviderRegistry, QgsProviderSublayerDetails, QgsRasterLayer)
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


def sidecar_path(path: str) -> str:
    return path + ".vrt"


class HsicSublayers(QgsProviderMetadata):
    """Tells QGIS that a .hsic file holds one raster layer: its sidecar, opened with GDAL. QGIS's own file
    item provider then lists the .hsic in the Browser (a C++ item: PyQGIS frees the Python half of items a
    Python provider returns, qgis/QGIS#49720), and a drag opens the sidecar. Registered once per QGIS
    process (3.22 cannot unregister a provider); ``enabled`` follows the plugin's load and unload."""

    KEY = "hsic"
    enabled = False
    instance = None  # the registered one, kept referenced: the registry owns the C++ half only

    def __init__(self):
        super().__init__(self.KEY, "HSIC compressed raster (opened through its GDAL sidecar)")

    def capabilities(self):
        return QgsProviderMetadata.ProviderMetadataCapabilities(QgsProviderMetadata.QuerySublayers)

    def providerCapabilities(self):
        return QgsProviderMetadata.FileBasedUris

    def querySublayers(self, uri, flags=None, feedback=None):  # noqa: N802
        if not (self.enabled and is_hsic(uri) and os.path.isfile(uri)):
            return []
        layer = QgsProviderSublayerDetails()
        layer.setProviderKey("gdal")
        layer.setType(QgsMapLayerType.RasterLayer)
        layer.setUri(sidecar_path(uri))
        layer.setName(os.path.basename(uri))
        return [layer]

    @classmethod
    def register(cls) -> None:
        registry = QgsProviderRegistry.instance()
        if cls.instance is None and registry.providerMetadata(cls.KEY) is None:
            cls.instance = cls()
            registry.registerProvider(cls.instance)
        cls.enabled = True


def hsic_of_item(item) -> str | None:
    """The .hsic file a Browser layer item stands for (its URI is the sidecar's), else None."""
    if not isinstance(item, QgsLayerItem) or not item.uri().lower().endswith(".hsic.vrt"):
        return None
    hsic = item.uri()[:-len(".vrt")]
    return hsic if os.path.isfile(hsic) and os.path.basename(hsic) == item.name() else None


class HsicItemGuiProvider(QgsDataItemGuiProvider):
    """A double-click on a .hsic item opens it through :func:`add_hsic_layer` (which writes a missing
    sidecar; QGIS's own handling would open only an existing one)."""

    def __init__(self, iface=None):
        super().__init__()
        self.iface = iface

    def name(self) -> str:
        return "HSIC"

    def handleDoubleClick(self, item, context) -> bool:  # noqa: N802
        hsic = hsic_of_item(item)
        if hsic is None:
            return False
        add_hsic_layer(hsic, item.name(), self.iface)
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
        HsicSublayers.register()
        QgsGui.dataItemGuiProviderRegistry().addProvider(self.clicks)
        self.iface.registerCustomDropHandler(self.drops)
        # An attribute of this iface object shadows the class's method for Python callers only.
        self.original_add_raster_layer = self.iface.addRasterLayer
        self.iface.addRasterLayer = self.add_raster_layer

    def unregister(self) -> None:
        HsicSublayers.enabled = False
        QgsGui.dataItemGuiProviderRegistry().removeProvider(self.clicks)
        self.iface.unregisterCustomDropHandler(self.drops)
        if "addRasterLayer" in vars(self.iface):
            del self.iface.addRasterLayer
