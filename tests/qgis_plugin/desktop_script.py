"""Run inside the QGIS desktop by test_desktop.py (``qgis --code``): checks the toolbox, opens a .hsic
through hsic:open, waits for the map canvas to draw it, saves a screenshot and writes a JSON result."""

import json
import os
import time
import traceback

from qgis.core import QgsMultiBandColorRenderer, QgsProject
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QColor
from qgis.utils import iface

OUT = os.environ["HSIC_DESKTOP_OUT"]
HSIC = os.environ["HSIC_DESKTOP_FILE"]
result = {"errors": []}
started = time.time()


def mark(stage):
    """Stages reached, for a test report when QGIS dies without a result."""
    with open(os.path.join(OUT, "stages.txt"), "a") as f:
        f.write(f"{time.time() - started:.1f}s {stage}\n")


def finish():
    with open(os.path.join(OUT, "result.json.partial"), "w") as f:
        json.dump(result, f, indent=2)
    os.replace(os.path.join(OUT, "result.json.partial"), os.path.join(OUT, "result.json"))
    os._exit(0)  # no "save project?" question, no teardown: the test has what it needs


def toolbox_algorithms():
    """Algorithm ids the Processing Toolbox shows, read from its tree, filtered to 'hsic' as a user would."""
    from processing.gui.ProcessingToolbox import ProcessingToolbox

    toolbox = iface.mainWindow().findChild(ProcessingToolbox)
    toolbox.setVisible(True)
    toolbox.searchBox.setText("hsic")
    tree = toolbox.algorithmTree
    model, found = tree.model(), []

    def walk(parent):
        for row in range(model.rowCount(parent)):
            index = model.index(row, 0, parent)
            alg = tree.algorithmForIndex(index)
            if alg is not None:
                found.append(alg.id())
            walk(index)

    walk(tree.rootIndex())
    tree.expandAll()
    return sorted(set(found))


def true_colour(layer):
    """Bands nearest 650/550/470 nm as red/green/blue (the bands carry wavelengths), stretched 2-98 %."""
    from osgeo import gdal
    from qgis.core import QgsContrastEnhancement, QgsRasterMinMaxOrigin

    ds = gdal.Open(layer.source())
    wl = [float(ds.GetRasterBand(b).GetMetadataItem("wavelength")) for b in range(1, ds.RasterCount + 1)]
    ds = None
    pick = [min(range(len(wl)), key=lambda i: abs(wl[i] - t)) + 1 for t in (650, 550, 470)]
    layer.setRenderer(QgsMultiBandColorRenderer(layer.dataProvider(), *pick))
    layer.setContrastEnhancement(QgsContrastEnhancement.StretchToMinimumMaximum,
                                 QgsRasterMinMaxOrigin.CumulativeCut)
    result["rgb_bands"] = pick


def step1():
    try:
        import processing

        mark("step1")
        result["toolbox"] = toolbox_algorithms()
        mark(f"toolbox read: {result['toolbox']}")
        out = processing.runAndLoadResults("hsic:open", {"INPUT": HSIC, "NAME": "hsic layer"})
        result["open_output"] = out["OUTPUT"]
        mark("hsic:open ran")
        layers = QgsProject.instance().mapLayersByName("hsic layer")
        result["layers"] = len(layers)
        layer = layers[0]
        result["valid"] = layer.isValid()
        result["crs"] = layer.crs().authid()
        result["bands"] = layer.bandCount()
        try:
            true_colour(layer)
        except Exception:
            result["errors"].append("true colour: " + traceback.format_exc())
        iface.mapCanvas().setCanvasColor(QColor(255, 255, 255))
        # Zoomed once the panels have settled (the canvas is resized after the layer is added).
        QTimer.singleShot(500, lambda: zoom(layer))
    except Exception:
        result["errors"].append(traceback.format_exc())
        finish()


def zoom(layer):
    try:
        canvas = iface.mapCanvas()
        canvas.setExtent(layer.extent())
        canvas.refresh()
        mark("canvas refresh asked")
        QTimer.singleShot(1500, step2)
    except Exception:
        result["errors"].append(traceback.format_exc())
        finish()


def step2():
    try:
        canvas = iface.mapCanvas()
        if canvas.isDrawing() and time.time() - started < 200:
            QTimer.singleShot(500, step2)
            return
        mark("canvas drawn")
        image = canvas.grab().toImage()
        w, h = image.width(), image.height()
        drawn = sum(1 for y in range(0, h, 4) for x in range(0, w, 4)
                    if image.pixelColor(x, y).rgb() & 0xFFFFFF != 0xFFFFFF)
        result["canvas_size"] = [w, h]
        result["drawn_fraction"] = drawn / max(1, len(range(0, h, 4)) * len(range(0, w, 4)))
        shot = os.path.join(OUT, "qgis.png")
        result["screenshot_saved"] = iface.mainWindow().grab().save(shot, "PNG")
        result["screenshot"] = shot
        import engine

        result["engine_from"] = engine.__file__  # the plugin's own copy, from the installed zip
    except Exception:
        result["errors"].append(traceback.format_exc())
    finish()


# The whole virtual screen (Xvfb has no window manager to maximise it).
iface.mainWindow().setGeometry(0, 0, 1280, 800)
QTimer.singleShot(1000, step1)
