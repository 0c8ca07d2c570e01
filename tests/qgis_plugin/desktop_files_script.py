"""Run inside the QGIS desktop by test_desktop_files.py (``qgis --code``): opens four .hsic files without
sidecars the four ways a user does (iface.addRasterLayer, a file dropped on the window, a Browser item
dragged onto it, a Browser item double-clicked), reloads the Browser, and writes what it saw."""

import json
import os
import traceback

from qgis.core import QgsApplication, QgsMimeDataUtils, QgsProject
from qgis.gui import QgsDataItemGuiContext, QgsGui
from qgis.PyQt.QtCore import QMimeData, QPoint, QPointF, Qt, QTimer, QUrl
from qgis.PyQt.QtGui import QDragEnterEvent, QDropEvent
from qgis.PyQt.QtWidgets import QApplication
from qgis.utils import iface

OUT = os.environ["HSIC_DESKTOP_OUT"]
DATA = os.environ["HSIC_DESKTOP_DATA"]
result = {"errors": []}
items = []  # Browser items made here, kept until the end


def finish():
    with open(os.path.join(OUT, "result.json"), "w") as f:
        json.dump(result, f, indent=1)
    os._exit(0)


def drop(mime):
    """What the window receives when something is dropped on it."""
    QApplication.sendEvent(iface.mainWindow(), QDragEnterEvent(QPoint(300, 300), Qt.CopyAction, mime,
                                                              Qt.LeftButton, Qt.NoModifier))
    QApplication.sendEvent(iface.mainWindow(), QDropEvent(QPointF(300, 300), Qt.CopyAction, mime, Qt.LeftButton,
                                                         Qt.NoModifier))


def browser_item(name):
    """The item the Browser shows for a file (QGIS's own file provider makes it)."""
    (files,) = [p for p in QgsApplication.dataItemProviderRegistry().providers() if p.name() == "files"]
    items.append(files.createDataItem(os.path.join(DATA, name), None))
    return items[-1]


def step1():
    try:
        layer = iface.addRasterLayer(os.path.join(DATA, "a.hsic"))
        result["added"] = layer is not None and layer.isValid()
        files = QMimeData()
        files.setUrls([QUrl.fromLocalFile(os.path.join(DATA, "b.hsic"))])
        drop(files)
        item = browser_item("c.hsic")
        result["item"] = [item.name(), item.mimeUris()[0].uri]
        drop(QgsMimeDataUtils.encodeUriList(item.mimeUris()))
        (clicks,) = [p for p in QgsGui.dataItemGuiProviderRegistry().providers() if p.name() == "HSIC"]
        result["double_click"] = clicks.handleDoubleClick(browser_item("d.hsic"), QgsDataItemGuiContext())
        QTimer.singleShot(3000, step2)  # QGIS opens dropped files after a short timer
    except Exception:
        result["errors"].append(traceback.format_exc())
        finish()


def step2():
    try:
        result["layers"] = {layer.name(): [layer.isValid(), layer.source()]
                            for layer in QgsProject.instance().mapLayers().values()}
        iface.browserModel().reload()  # the Browser's items are rebuilt: no crash
    except Exception:
        result["errors"].append(traceback.format_exc())
    QTimer.singleShot(2000, finish)


QTimer.singleShot(2000, step1)
