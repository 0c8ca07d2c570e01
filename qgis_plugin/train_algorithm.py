"""``hsic:train``: fine-tune (or train from scratch) a codec on raster layers, writing a weights file
that hsic:compress takes as its Weights parameter. The work is engine.training.train, as for `hsic train`."""

from __future__ import annotations

import os
import shutil
import tempfile

from qgis.core import (QgsProcessing, QgsProcessingAlgorithm, QgsProcessingException, QgsProcessingOutputFile,
                       QgsProcessingParameterBoolean, QgsProcessingParameterEnum, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber)

from qgis_plugin.common import beside, hsic_errors, is_unset, require_suffix


class TrainAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    CODEC = "CODEC"
    QUALITY = "QUALITY"
    INIT = "INIT"
    FROM_SCRATCH = "FROM_SCRATCH"
    STEPS = "STEPS"
    SEED = "SEED"
    OUTPUT = "OUTPUT"
    RECORD = "RECORD"

    def name(self) -> str:
        return "train"

    def displayName(self) -> str:  # noqa: N802
        return "Train or fine-tune a codec"

    def shortHelpString(self) -> str:  # noqa: N802
        return (
            "Fine-tunes a codec's weights on your raster layers (by default starting from the installed "
            "weights of the chosen quality; tick 'from scratch' to start from random weights) and writes a "
            "weights file (.pt) with a training record (.json) beside it. Give the weights file to "
            "hsic:compress (Weights); keep it beside the .hsic files it wrote, since decoding needs it. "
            "Empty output: <first layer>_<codec>-q<quality>.pt next to the first layer. "
            "Progress moves per training step; cancelling leaves no file."
        )

    def createInstance(self):  # noqa: N802
        return type(self)()

    def initAlgorithm(self, config=None):  # noqa: N802
        from engine.registry import DEFAULT_CODEC, list_codecs

        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, "Training rasters", layerType=QgsProcessing.TypeRaster))
        self.addParameter(QgsProcessingParameterEnum(
            self.CODEC, "Codec", options=[i.id for i in list_codecs()], defaultValue=DEFAULT_CODEC,
            usesStaticStrings=True))
        self.addParameter(QgsProcessingParameterNumber(
            self.QUALITY, "Quality (empty: the codec's default)", type=QgsProcessingParameterNumber.Integer,
            minValue=0, optional=True))
        self.addParameter(QgsProcessingParameterFile(
            self.INIT, "Start from this weights file (empty: the installed weights of the quality)",
            behavior=QgsProcessingParameterFile.File, extension="pt", optional=True))
        self.addParameter(QgsProcessingParameterBoolean(
            self.FROM_SCRATCH, "Train from scratch (random start) instead of fine-tuning", defaultValue=False))
        self.addParameter(QgsProcessingParameterNumber(
            self.STEPS, "Training steps (batches of 256 spectra)", type=QgsProcessingParameterNumber.Integer,
            minValue=1, maxValue=1_000_000, defaultValue=1000))
        self.addParameter(QgsProcessingParameterNumber(
            self.SEED, "Random seed", type=QgsProcessingParameterNumber.Integer, minValue=0, defaultValue=0))
        self.addParameter(QgsProcessingParameterFileDestination(
            self.OUTPUT, "Weights file (empty: next to the first training raster)",
            fileFilter="PyTorch weights (*.pt)", optional=True, createByDefault=False))
        self.addOutput(QgsProcessingOutputFile(self.RECORD, "Training record (.json)"))

    def _quality(self, parameters, context) -> int | None:
        if parameters.get(self.QUALITY) is None:
            return None
        return self.parameterAsInt(parameters, self.QUALITY, context)

    def checkParameterValues(self, parameters, context):  # noqa: N802
        ok, message = super().checkParameterValues(parameters, context)
        if not ok:
            return ok, message
        from qgis_plugin import deps

        if deps.missing():
            return False, deps.message(deps.missing())
        from engine.errors import HSICError
        from engine.registry import codec_class

        codec = self.parameterAsEnumString(parameters, self.CODEC, context)
        try:
            cls = codec_class(codec)
            cls.info.check_quality(self._quality(parameters, context))
        except HSICError as e:
            return False, str(e)
        if not hasattr(cls, "recipes"):
            return False, f"codec {codec!r} has nothing to train"
        init = self.parameterAsFile(parameters, self.INIT, context)
        if init and self.parameterAsBool(parameters, self.FROM_SCRATCH, context):
            return False, f"{self.INIT} and {self.FROM_SCRATCH} contradict each other: choose one"
        if init and not os.path.isfile(init):
            return False, f"{self.INIT}: weights file {init!r} does not exist"
        return True, ""

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802
        from qgis_plugin.deps import require

        require()
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException(f"{self.INPUT}: choose at least one training raster")
        for layer in layers:
            if layer.providerType() != "gdal":
                raise QgsProcessingException(
                    f"{self.INPUT}: {layer.name()!r} is a {layer.providerType()!r} layer, not a raster file")
        codec = self.parameterAsEnumString(parameters, self.CODEC, context)
        steps = self.parameterAsInt(parameters, self.STEPS, context)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        init = self.parameterAsFile(parameters, self.INIT, context) or None
        scratch = self.parameterAsBool(parameters, self.FROM_SCRATCH, context)

        from engine.registry import get_info
        from engine.training import TrainConfig, train
        from hsi_gdal.dataset import Open

        with hsic_errors():
            quality = get_info(codec).check_quality(self._quality(parameters, context))
            dst = self.parameterAsFileOutput(parameters, self.OUTPUT, context)
            if is_unset(parameters.get(self.OUTPUT)):
                dst = beside(layers[0].source(), f"_{codec}-q{quality}.pt")
            require_suffix(dst, (".pt",), self.OUTPUT)
            if not os.path.isdir(os.path.dirname(os.path.abspath(dst))):
                raise QgsProcessingException(f"{self.OUTPUT}: folder {os.path.dirname(dst)!r} does not exist")
            if not scratch and init is None:
                from engine.weight_files import WEIGHTS_DIR

                init = str(WEIGHTS_DIR / get_info(codec).weights[quality])
            feedback.pushInfo(f"{'training from scratch' if scratch else f'fine-tuning {init}'}: "
                              f"{codec} quality {quality}, {steps} steps, seed {seed}")

            scenes = []
            for layer in layers:
                if feedback.isCanceled():
                    raise QgsProcessingException("cancelled")
                ds = Open(layer.source())
                scenes.append((os.path.basename(layer.source()), ds.ReadAsArray(),
                               ds.GetRasterBand(1).GetNoDataValue()))
                feedback.pushInfo(f"read {layer.source()} ({ds.RasterCount} bands)")

            def progress(step: int, total: int, m: dict) -> bool:
                feedback.setProgress(100.0 * step / total)
                if step % 100 == 0 or step == total:
                    feedback.pushInfo(f"step {step}/{total}: training estimate {m['psnr']:.2f} dB "
                                      f"at {m['bpppc']:.3f} bpppc")
                return not feedback.isCanceled()

            # Written into a scratch folder and moved at the end: a cancelled run leaves no file.
            with tempfile.TemporaryDirectory(dir=os.path.dirname(os.path.abspath(dst))) as tmp:
                train(TrainConfig(codec, quality, steps=steps, seed=seed), scenes, tmp, progress=progress,
                      init=init)
                record = os.path.splitext(dst)[0] + ".json"
                shutil.move(os.path.join(tmp, f"{codec}-q{quality}.json"), record)
                shutil.move(os.path.join(tmp, f"{codec}-q{quality}.pt"), dst)
        feedback.pushInfo(f"wrote {dst}; give it to hsic:compress as WEIGHTS={dst}")
        return {self.OUTPUT: dst, self.RECORD: record}
