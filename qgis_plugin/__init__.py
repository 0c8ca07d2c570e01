"""QGIS plugin entry point: registers the HSIC Processing provider (compress, decompress, evaluate, open, train)
and, in the desktop, the hooks that open .hsic files like rasters (qgis_plugin/hsic_layers.py).

QGIS calls ``classFactory`` when it loads the plugin; qgis_process calls only ``initProcessing``, so the
provider is registered there and not in ``initGui`` alone. Nothing heavy is imported here.
"""

from qgis.core import QgsApplication


class HsicPlugin:
    def __init__(self, iface=None):
        self.iface = iface
        self.provider = None
        self.files = None  # the desktop hooks that open .hsic files (qgis_plugin/hsic_layers.py)

    def initProcessing(self) -> None:
        # Imported here so that loading the plugin module costs nothing until QGIS asks for the provider.
        from qgis_plugin.provider import HsicProvider

        if self.provider is None:
            self.provider = HsicProvider()
            QgsApplication.processingRegistry().addProvider(self.provider)

    def initGui(self) -> None:
        self.initProcessing()
        if self.iface is not None and self.files is None:
            # .hsic files in the Browser, dropped on the window and given to iface.addRasterLayer open
            # as rasters (with the missing-packages message if HSIC cannot decode them yet).
            from qgis_plugin.hsic_layers import HsicFiles

            self.files = HsicFiles(self.iface)
            self.files.register()
        from qgis_plugin import deps

        missing = deps.missing()
        if missing:
            # The plugin stays loaded (its algorithms explain the same); one message says what to install.
            from qgis.core import Qgis, QgsMessageLog

            text = deps.message(missing)
            QgsMessageLog.logMessage(text, "HSIC", Qgis.Warning)
            if self.iface is not None:
                self.iface.messageBar().pushMessage("HSIC", text, Qgis.Warning, 0)
            return
        # In the desktop, let GDAL run the decoder behind .hsic.vrt sidecars, so they open as rasters
        # from the start (hsi_gdal imports no torch; decoding loads it when a sidecar is first read).
        import hsi_gdal

        hsi_gdal.allow_decoder()

    def unload(self) -> None:
        if self.files is not None:
            self.files.unregister()
            self.files = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None


def classFactory(iface):  # noqa: N802 (name fixed by QGIS)
    # Before anything can import torch: in the desktop, triton would crash QGIS (see llvm_guard).
    from qgis_plugin import llvm_guard

    llvm_guard.install()
    return HsicPlugin(iface)
