"""Run inside the QGIS desktop by test_desktop.py (``qgis --code``): checks the toolbox, opens a .hsic
through hsic:open, then, as a user would, zooms to the layer, out twice and in once. In each state it
waits for the map canvas to draw, saves the canvas as a PNG, and renders the source GeoTIFF with the
same renderer and map settings as a reference PNG; test_desktop.py compares them. Writes a JSON result."""

import json
import os
import time
import traceback

from qgis.core import (QgsMapRendererParallelJob, QgsMultiBandColorRenderer, QgsProject,
                       QgsRasterLayer)
from qgis.PyQt.QtCore import QTimer
from qgis.PyQt.QtGui import QColor
from qgis.utils import iface

OUT = os.environ["HSIC_DESKTOP_OUT"]
HSIC = os.environ["HSIC_DESKTOP_FILE"]
SOURCE = os.environ["HSIC_DESKTOP_SOURCE"]  # the GeoTIFF the .hsic was compressed from
result = {"errors": [], "states": []}
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


def guarded(step):
    """A timer callback that records any error and ends the run instead of leaving QGIS waiting."""
    def run(*args):
        try:
            step(*args)
        except Exception:
            result["errors"].append(traceback.format_exc())
            finish()
    return run


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


# What a user does after opening: View > Zoom to Layer, then the zoom-out and zoom-in tools.
STATES = [
    ("zoom to layer", lambda canvas, layer: canvas.setExtent(layer.extent())),
    ("zoom out", lambda canvas, layer: canvas.zoomOut()),
    ("zoom out again", lambda canvas, layer: canvas.zoomOut()),
    ("zoom in", lambda canvas, layer: canvas.zoomIn()),
]


@guarded
def step1():
    import processing

    mark("step1")
    result["toolbox"] = toolbox_algorithms()
    mark(f"toolbox read: {result['toolbox']}")
    t0 = time.perf_counter()
    out = processing.runAndLoadResults("hsic:open", {"INPUT": HSIC, "NAME": "hsic layer"})
    result["open_s"] = round(time.perf_counter() - t0, 2)
    result["open_output"] = out["OUTPUT"]
    mark("hsic:open ran")
    layers = QgsProject.instance().mapLayersByName("hsic layer")
    result["layers"] = len(layers)
    layer = layers[0]
    result["valid"] = layer.isValid()
    result["crs"] = layer.crs().authid()
    result["bands"] = layer.bandCount()
    result["size"] = [layer.width(), layer.height()]
    true_colour(layer)
    iface.mapCanvas().setCanvasColor(QColor(255, 255, 255))
    # The reference: the source GeoTIFF, never added to the project, drawn with a copy of the layer's
    # renderer (same bands, same resolved stretch).
    reference = QgsRasterLayer(SOURCE, "reference")
    reference.setRenderer(layer.renderer().clone())
    # Zoomed once the panels have settled (the canvas is resized after the layer is added).
    QTimer.singleShot(500, lambda: enter_state(0, layer, reference))


@guarded
def enter_state(i, layer, reference):
    canvas = iface.mapCanvas()
    STATES[i][1](canvas, layer)
    canvas.refresh()
    mark(f"state {i} ({STATES[i][0]}) asked")
    t0 = time.perf_counter()
    QTimer.singleShot(300, lambda: capture(i, layer, reference, t0))


@guarded
def capture(i, layer, reference, t0):
    canvas = iface.mapCanvas()
    if canvas.isDrawing() and time.time() - started < 200:
        QTimer.singleShot(100, lambda: capture(i, layer, reference, t0))
        return
    drawn_after = time.perf_counter() - t0
    mark(f"state {i} drawn")
    shot = os.path.join(OUT, f"state{i}.png")
    canvas.viewport().grab().toImage().save(shot, "PNG")  # the map, without the frame
    settings = canvas.mapSettings()
    settings.setLayers([reference])
    settings.setBackgroundColor(QColor(255, 255, 255))
    job = QgsMapRendererParallelJob(settings)
    job.start()
    job.waitForFinished()
    ref = os.path.join(OUT, f"reference{i}.png")
    job.renderedImage().save(ref, "PNG")
    # Scene pixels per screen pixel: above 1, GDAL reads into a buffer smaller than the window.
    per_screen_px = settings.mapUnitsPerPixel() / layer.rasterUnitsPerPixelX()
    result["states"].append({"name": STATES[i][0], "screenshot": shot, "reference": ref,
                             "scene_px_per_screen_px": round(per_screen_px, 3),
                             "draw_s": round(drawn_after, 2)})
    if i == 0:
        result["canvas_size"] = [canvas.width(), canvas.height()]
        result["screenshot_saved"] = iface.mainWindow().grab().save(os.path.join(OUT, "qgis.png"), "PNG")
    if i + 1 < len(STATES):
        QTimer.singleShot(0, lambda: enter_state(i + 1, layer, reference))
        return
    import engine

    result["engine_from"] = engine.__file__  # the plugin's own copy, from the installed zip
    finish()


# The whole virtual screen (Xvfb has no window manager to maximise it).
iface.mainWindow().setGeometry(0, 0, 1280, 800)
QTimer.singleShot(1000, step1)
