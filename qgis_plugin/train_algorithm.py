"""``hsic:train``: fine-tune (or train from scratch) a codec on raster layers, writing a weights file
that hsic:compress takes as its Weights parameter. The work is ``hsi_gdal.train``, as for `hsic train`."""

from __future__ import annotations

import os

from qgis.core import (QgsProcessing, QgsProcessingException, QgsProcessingOutputFile,
                       QgsProcessingParameterBoolean, QgsProcessingParameterFile,
                       QgsProcessingParameterFileDestination, QgsProcessingParameterMultipleLayers,
                       QgsProcessingParameterNumber)

from qgis_plugin.base import HsicAlgorithm, beside


class TrainAlgorithm(HsicAlgorithm):
    INIT = "INIT"
    FROM_SCRATCH = "FROM_SCRATCH"
    STEPS = "STEPS"
    SEED = "SEED"
    RECORD = "RECORD"

    ID = "train"
    DISPLAY_NAME = "Train or fine-tune a codec"
    HELP = (
        "Fine-tunes a codec's weights on your raster layers (by default starting from the installed "
        "weights of the chosen quality; tick 'from scratch' to start from random weights) and writes a "
        "weights file (.pt) with a training record (.json) beside it. Give the weights file to "
        "hsic:compress (Weights); keep it beside the .hsic files it wrote, since decoding needs it. "
        "Empty output: <first layer>_<codec>-q<quality>.pt next to the first layer. "
        "Progress moves per training step; cancelling leaves no file."
    )

    def initAlgorithm(self, config=None):  # noqa: N802
        self.addParameter(QgsProcessingParameterMultipleLayers(
            self.INPUT, "Training rasters", layerType=QgsProcessing.TypeRaster))
        from engine.registry import DEFAULT_TRAIN_CODEC

        self.add_codec_and_quality(default=DEFAULT_TRAIN_CODEC)
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

    def check_values(self, parameters, context):
        import hsi_gdal

        init = self.parameterAsFile(parameters, self.INIT, context) or None
        if init and self.parameterAsBool(parameters, self.FROM_SCRATCH, context):
            return False, f"{self.INIT} and {self.FROM_SCRATCH} contradict each other: choose one"
        hsi_gdal.check_train_options(self.codec(parameters, context),
                                     self.optional_int(parameters, self.QUALITY, context), init)
        return True, ""

    def _sources(self, parameters, context) -> list[str]:
        layers = self.parameterAsLayerList(parameters, self.INPUT, context)
        if not layers:
            raise QgsProcessingException(f"{self.INPUT}: choose at least one training raster")
        for layer in layers:
            if layer.providerType() != "gdal":
                raise QgsProcessingException(
                    f"{self.INPUT}: {layer.name()!r} is a {layer.providerType()!r} layer, not a raster file")
        return [layer.source() for layer in layers]

    def compute(self, parameters, context, feedback):
        import hsi_gdal

        sources = self._sources(parameters, context)
        codec = self.codec(parameters, context)
        steps = self.parameterAsInt(parameters, self.STEPS, context)
        seed = self.parameterAsInt(parameters, self.SEED, context)
        init = self.parameterAsFile(parameters, self.INIT, context) or None
        quality = hsi_gdal.check_train_options(codec, self.optional_int(parameters, self.QUALITY, context), init)
        dst = self.output_file(parameters, self.OUTPUT, context, beside(sources[0], f"_{codec}-q{quality}.pt"),
                               (".pt",))
        if init is None and not self.parameterAsBool(parameters, self.FROM_SCRATCH, context):
            init = hsi_gdal.installed_weights(codec, quality)
        feedback.pushInfo(f"{f'fine-tuning {init}' if init else 'training from scratch'}: "
                          f"{codec} quality {quality}, {steps} steps, seed {seed}")

        def progress(step: int, total: int, m: dict) -> bool:
            feedback.setProgress(100.0 * step / total)
            if step % 100 == 0 or step == total:
                feedback.pushInfo(f"step {step}/{total}: training estimate {m['psnr']:.2f} dB "
                                  f"at {m['bpppc']:.3f} bpppc")
            return not feedback.isCanceled()

        # A .pt destination is written only when training completes: a cancelled run leaves no file.
        hsi_gdal.train(codec, quality, sources, dst, steps=steps, seed=seed, init=init, progress=progress)
        feedback.pushInfo(f"wrote {dst}; give it to hsic:compress as WEIGHTS={dst}")
        return {self.OUTPUT: dst, self.RECORD: hsi_gdal.record_file(dst)}
