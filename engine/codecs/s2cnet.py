"""``s2cnet``: S2C-Net, a scale-hyperprior spatial codec on the latent map of a spectral autoencoder.

The network is :class:`engine.models.s2cnet.S2CNet`; tiles are coded like the other whole-tile codecs
(:class:`engine.codecs.spatial.SpatialCodec`: the hyperprior's y and z strings and the latent shape).

Training has the paper's two stages, both ``hsic train`` runs (``TrainConfig.stage``):

1. ``--stage spectral``: the pixel-wise spectral autoencoder alone, trained as a codec of its own
   (rate of its factorized latent + lmbda * MSE) on random single spectra; writes
   ``s2cnet-spectral-q<N>.pt`` (the whole model: the spatial part stays at its initial values);
2. ``--stage joint --init s2cnet-spectral-q<N>.pt`` (the default stage): every part trained together on
   patches with the mixed loss :meth:`S2CNetCodec.training_loss`; writes ``s2cnet-q<N>.pt``.

That is the raw-band variant (``--arch components=0``). The shipped weights take the scene's spectral
stage instead (:mod:`engine.codecs.stage_input`, ``components`` = 16): the KLT is the spectral encoder,
the spectral autoencoder a per-pixel refinement initialised at the identity
(:class:`engine.models.s2cnet.S2CNetPlanes`); it is trained in the joint stage alone.
"""

from __future__ import annotations

import numpy as np

from engine.codecs.base import CodecInfo
from engine.codecs.cae1d import Cae1d
from engine.codecs.spatial import SpatialCodec
from engine.codecs.stage_input import COMPONENTS, STAGE_STEP, StageInputMixin, based_recipes, plane_loss
from engine.errors import InputError
from engine.losses import rate_distortion_loss
from engine.registry import register

# One architecture for every rate (K = 16 latent values per pixel), so one pre-trained spectral
# autoencoder serves all three rates. Not ``center`` (the latent map's means as side information, as the
# other seed codecs): tried from the shipped weights' spectral part, joint training diverged at lr 1e-3
# (inverse GDN blew up) and was unstable at 2e-4 in a 300-step trial (batch MSE jumping between 7e-4
# and 3e-2); ``--arch center=true`` builds it.
_ARCH = {"latent": 16, "width": 32, "positions": 32, "N": 48, "M": 96}
# The stage-input variant (the shipped one): ``components`` planes; ``width`` is the refinement's.
_ARCH_PLANES = {**_ARCH, "components": COMPONENTS, "stage_step": STAGE_STEP, "down": 4}
_RAW_KEYS = ("latent", "width", "positions", "N", "M", "gain", "center", "input_gain")
_PLANE_KEYS = ("components", "width", "N", "M", "gain", "down", "base_step", "refine")
# On a fixed Haar base (engine.models.stage_base): the planes in orthonormal units, M = 16 K subbands of
# y at /4, the quantiser step that each quality's lmbda asks for.
_ARCH_BASED = {**_ARCH_PLANES, "M": 16 * COMPONENTS, "whiten": False, "refine": True}


@register
class S2CNetCodec(StageInputMixin, SpatialCodec):
    info = CodecInfo(
        id="s2cnet",
        title="S2C-Net: scale-hyperprior 2D codec on the latent map of a pixel-wise spectral autoencoder",
        paper="Sprengel, Fuchs, Demir, Learning-based hyperspectral image compression using a "
              "spatio-spectral approach (S2C-Net)",
        qualities=(1, 2, 3),
        default_quality=2,
    )
    patch = 32
    # alpha weighs the latent-map MSE in the mixed loss; u is the spectral latent before its quantiser
    # gain of 64 (stage 1 learned a precision of ~1/64 there), and 0.5 makes both terms of similar size
    # where the spectral MSE is ~1e-4. For the planes both terms are band MSEs (see training_loss).
    # lmbda of the planes: band MSE against bits per band sample (engine.codecs.stage_input.plane_loss).
    recipes = based_recipes(_ARCH_BASED, alpha=0.5, batch=2)
    # Per training stage, what replaces the recipe's entries; the last stage writes the codec's weights.
    stages = {"spectral": {"lmbda": 30000.0, "batch": 256}, "joint": {}}

    @classmethod
    def build_network(cls, arch: dict):
        from engine.models.s2cnet import S2CNet, S2CNetPlanes

        if arch.get("components", 0):
            return S2CNetPlanes(**{k: arch[k] for k in _PLANE_KEYS if k in arch})
        return S2CNet(**{k: arch[k] for k in _RAW_KEYS if k in arch})

    @classmethod
    def training_batch(cls, cube: np.ndarray, valid: np.ndarray, rng: np.random.Generator, batch: int,
                       recipe: dict) -> tuple[np.ndarray, ...]:
        """Single spectra (batch, 1, B) in the spectral stage, patches (batch, B, P, P) in the joint one;
        for the planes, their whitened planes, loss weights and band counts (stage_input.plane_batch)."""
        if recipe.get("stage") == "spectral":
            if recipe["arch"].get("components", 0):
                raise InputError("the stage-input s2cnet has no spectral stage (the KLT is its spectral "
                                 "encoder): train the joint stage, or pass --arch components=0")
            return Cae1d.training_batch(cube, valid, rng, batch, recipe)
        return super().training_batch(cube, valid, rng, batch, recipe)

    @classmethod
    def training_loss(cls, model, out: dict, xb, vb, recipe: dict, *extra):
        """Spectral stage: lmbda * MSE + bits per value of the spectral latent (the cae1d loss).

        Joint stage, the mixed loss: lmbda * (MSE(x, x_hat) + alpha * MSE(u, u_hat)) + bits per value of
        y and z, where u is the spectral encoder's latent map and u_hat the spatial codec's reconstruction
        of it. u is a fixed target in the second term (detached): that term trains the spatial codec to
        reproduce the latent; the first term trains everything end to end.
        """
        if extra:  # the planes: band MSE (plane errors weighed by their variances), the latent's the same way
            loss, metrics = plane_loss(out, xb, vb, extra[0], recipe["lmbda"])
            pixels = (vb.sum(1) > 0).sum().clamp_min(1)
            latent_mse = ((out["u_hat"] - out["u"].detach()) ** 2 * vb).sum() / pixels
            loss = loss + recipe["lmbda"] * recipe["alpha"] * latent_mse
            return loss, {**metrics, "latent_mse": latent_mse.item()}
        loss, metrics = rate_distortion_loss(out, xb, vb, recipe["lmbda"])
        if recipe.get("stage") == "spectral":
            return loss, metrics
        latent_mse = ((out["u_hat"] - out["u"].detach()) ** 2).mean()
        loss = loss + recipe["lmbda"] * recipe["alpha"] * latent_mse
        return loss, {**metrics, "latent_mse": latent_mse.item()}
