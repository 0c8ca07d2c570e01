"""Fixtures for the Processing algorithms: the provider registered through the plugin, and runners."""

import pytest
from qgis.core import QgsApplication, QgsProcessingContext, QgsProcessingFeedback


@pytest.fixture
def hsic_registry(qgis_processing):
    """The processing registry with the provider registered the way QGIS does it, through the plugin."""
    from qgis_plugin import classFactory

    plugin = classFactory(None)
    plugin.initProcessing()
    yield QgsApplication.processingRegistry()
    plugin.unload()


class LogFeedback(QgsProcessingFeedback):
    """Records the log lines and progress; cancels at the ``cancel_at``-th progress report if given."""

    def __init__(self, cancel_at: int | None = None):
        super().__init__()
        self.lines, self.reports, self.cancel_at = [], [], cancel_at
        self.progressChanged.connect(self._on_progress)

    def pushInfo(self, info):  # noqa: N802
        self.lines.append(info)
        super().pushInfo(info)

    def _on_progress(self, percent):
        self.reports.append(percent)
        if self.cancel_at is not None and len(self.reports) >= self.cancel_at:
            self.cancel()


class FakeIface:
    """What the plugin uses of QGIS's iface: the message bar (messages recorded as (title, text)), drop
    handler registration, and addRasterLayer (answers what it was asked: a stand-in for QGIS's own)."""

    def __init__(self):
        self.messages, self.handlers = [], []

    def messageBar(self):  # noqa: N802
        return self

    def pushMessage(self, title, text, level, duration):  # noqa: N802
        self.messages.append((title, text))

    def registerCustomDropHandler(self, handler):  # noqa: N802
        self.handlers.append(handler)

    def unregisterCustomDropHandler(self, handler):  # noqa: N802
        self.handlers.remove(handler)

    def addRasterLayer(self, path, base_name="", provider="gdal"):  # noqa: N802
        return ("QGIS", path, base_name, provider)


def run_alg(alg_id, parameters, feedback=None, context=None):
    import processing

    return processing.run(alg_id, parameters, feedback=feedback or QgsProcessingFeedback(),
                          context=context or QgsProcessingContext())
