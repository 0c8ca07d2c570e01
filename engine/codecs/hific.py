"""``hific-se`` and ``hific-3d``: HiFiC adapted to hyperspectral images, see engine.models.hific.

The shipped weights code the scene's spectral stage (engine.codecs.stage_input: 16 KLT component planes
in orthonormal units) with E and G refining a fixed Haar base (engine.models.hific.HiFiCPlanes). Their
loss is lmbda * band MSE + bits per band sample (plus the SE l1 term) at a fixed lmbda per quality, whose
quantiser step is the base's (stage_input.step_for): on the planes it replaces the paper's target-rate
control and SSIM term (an SSIM of KLT planes is not the SSIM of the bands the codec is measured by). The
GAN stage adds the adversary's terms scaled by lmbda / (theta1 * 255^2), i.e. in the paper's proportion to
the MSE. What follows is the raw-band variant (``--arch components=0``, the retired weights).

Training follows the paper in two stages, both ``hsic train``:

1. without the adversary (beta = 0): loss = lambda * rate + theta1 * MSE + theta2 * (1 - SSIM);
2. ``--gan --init <stage 1 weights>``: a conditional discriminator is trained alongside and the generator
   loss gains - beta * log D(x', y_hat) and theta3 * perceptual, the perceptual term being feature matching
   on the discriminator's features (no pretrained LPIPS network can be downloaded here).

Target-rate control: lambda = lambda_a while the batch's rate is above the target r_t, lambda_b << lambda_a
otherwise; the quality number picks a row of the paper's Table I. The paper's rates are bits per pixel of
369-band patches; here the rate is bits per sample x 369 (:data:`PAPER_BANDS`), so that every band count
gets the paper's bits per sample (bits per pixel of the tile's own bands would give a 102-band scene 3.6
times more bits per sample than a 369-band one).
"""

from __future__ import annotations

from typing import ClassVar

from engine.codecs.base import CodecInfo
from engine.codecs.spatial import SpatialCodec
from engine.codecs.stage_input import COMPONENTS, STAGE_STEP, StageInputMixin, based_recipes, plane_loss
from engine.losses import likelihood_bits, masked_mse
from engine.registry import register

# The paper's Table I: target rate r_t (bits per pixel of its 369-band patches) -> lambda_a.
TABLE_I: dict[float, float] = {0.2: 2.0 ** 1, 0.4: 2.0 ** 0, 0.6: 2.0 ** -1, 0.8: 2.0 ** -2, 1.0: 2.0 ** -3}
PAPER_BANDS = 369
# lambda_b is fixed for all targets and far below every lambda_a; the paper does not give its value.
LAMBDA_B = 2.0 ** -7
# The paper's distortion weights and adversarial weight. MSE is taken on the 0..255 scale, as in HiFiC,
# where these values come from (our tiles are normalised to 0..1).
THETA = (0.15 * 2.0 ** -5, 0.075 * 2.0 ** -3, 1.0)
BETA = 0.15
MSE_SCALE = 255.0 ** 2
# Stage 1's lambda (no target): rate cheap enough for the latent to learn to carry the image first.
LAMBDA_STAGE1 = 2.0 ** -12
# Weight of the l1 penalty on the SE blocks' FC weights (the paper uses one; its weight is not given).
SE_L1 = 1e-5

# Shipped qualities: rows 0.2, 0.6 and 1.0 of Table I.
QUALITY_TARGETS = {1: 0.2, 2: 0.6, 3: 1.0}


def target_rate_lambda(rate: float, r_t: float, lambda_a: float, lambda_b: float = LAMBDA_B) -> float:
    """The paper's rule: lambda_a while the rate is above the target r_t, lambda_b otherwise."""
    return lambda_a if rate > r_t else lambda_b


# On the planes: the seed codecs' fixed lmbda per quality (stage_input.based_recipes, as for s2cnet), whose
# quantiser step is the base's; it replaces the target-rate control (see _HiFiCCodec.training_loss).
def _recipes(raw: dict, planes: dict) -> dict[int, dict]:
    """The planes' recipes (shipped); the raw-band variant's fields stay for ``--arch components=0``."""
    recipes = based_recipes({**raw, **planes}, lambda_b=LAMBDA_B, lambda_stage1=LAMBDA_STAGE1, beta=BETA,
                            se_l1=SE_L1, batch=4)
    for q, r in recipes.items():
        r_t = QUALITY_TARGETS[q]
        # The GAN stage's weights relative to the band MSE: the paper's beta and theta3 against its
        # theta1 * MSE(0..255), applied to lmbda * MSE (HiFiCAdversary).
        r.update(gan_scale=r["lmbda"] / (THETA[0] * MSE_SCALE), r_t=r_t, lambda_a=TABLE_I[r_t],
                 theta=list(THETA))
    return recipes


class HiFiCAdversary:
    """The conditional discriminator and its optimiser, trained alongside the codec (engine.training hook).

    Its losses are HiFiC's non-saturating GAN losses: the generator pays - log D(x', y_hat), the
    discriminator - log D(x, y_hat) - log(1 - D(x', y_hat)); y_hat is detached (HiFiC stops gradients
    from D into the latent).
    """

    def __init__(self, latent: int, recipe: dict, device, lr: float = 1e-4):
        import torch

        from engine.models.hific import Discriminator

        self.net = Discriminator(latent).to(device).train()
        self.opt = torch.optim.Adam(self.net.parameters(), lr=lr, betas=(0.5, 0.999))
        scale = recipe["gan_scale"] if recipe["arch"].get("components", 0) else 1.0
        self.beta, self.theta3 = scale * recipe["beta"], scale * recipe["theta"][2]
        self._last: dict[str, float] = {}

    def generator_loss(self, out, xb, vb):
        import torch
        import torch.nn.functional as F

        from engine.models.hific import feature_matching

        y = out["y_hat"].detach()
        logits, fake = self.net(out["x_hat"], y)
        with torch.no_grad():
            _, real = self.net(xb, y)
        adv = F.softplus(-logits).mean()  # -log sigmoid(logits) = -log D
        perceptual = feature_matching(fake, real)
        self._last = {"g_adv": adv.item(), "perceptual": perceptual.item()}
        return self.beta * adv + self.theta3 * perceptual

    def step(self, out, xb, vb) -> dict:
        import torch.nn.functional as F

        y = out["y_hat"].detach()
        real, _ = self.net(xb, y)
        fake, _ = self.net(out["x_hat"].detach(), y)
        loss = F.softplus(-real).mean() + F.softplus(fake).mean()
        self.opt.zero_grad()
        loss.backward()
        self.opt.step()
        return {**self._last, "d_loss": loss.item()}

    def state_dict(self) -> dict:
        return {"net": self.net.state_dict(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.net.load_state_dict(state["net"])
        self.opt.load_state_dict(state["opt"])


class _HiFiCCodec(StageInputMixin, SpatialCodec):
    """Shared by both ids; they differ in architecture only."""

    patch: ClassVar[int] = 64  # the raw-band hyperprior down-samples by 64 (the planes' by 16)
    adversarial: ClassVar[bool] = True  # stage 2 (``--gan``) trains a discriminator alongside

    @classmethod
    def build_network(cls, arch: dict):
        from engine.models.hific import HiFiC, HiFiCPlanes

        if arch.get("components", 0):
            return HiFiCPlanes(**{k: arch[k] for k in _PLANE_KEYS if k in arch}, widths=arch["plane_widths"],
                               hyper=arch["plane_hyper"])
        return HiFiC(**{k: arch[k] for k in _RAW_KEYS if k in arch})

    @classmethod
    def training_loss(cls, model, out, xb, vb, recipe, *extra):
        """Planes: lmbda * band MSE + bits per band sample (stage_input.plane_loss) + SE l1.

        Raw bands: lambda * rate + theta1 * MSE(0..255) + theta2 * (1 - SSIM) + SE l1; see the module
        docstring. The rate is bits per sample x 369, the paper's bits per pixel for its band count.
        """
        if extra:
            loss, metrics = plane_loss(out, xb, vb, extra[0], recipe["lmbda"])
            return loss + recipe["se_l1"] * model.se_l1().to(loss.device), metrics
        import torch

        from engine.models.hific import ssim

        mse = masked_mse(out["x_hat"], xb, vb)
        # Invalid samples count as perfect in SSIM, as in engine.metrics.ssim.
        s = ssim(xb, torch.where(vb, out["x_hat"], xb))
        bpppc = likelihood_bits(out["likelihoods"]) / xb.numel()
        rate = bpppc * PAPER_BANDS
        if recipe.get("gan"):
            lam = target_rate_lambda(rate.item(), recipe["r_t"], recipe["lambda_a"], recipe["lambda_b"])
        else:
            # Stage 1 trains at a high rate: with the paper's lambdas from the first step, the latent
            # collapsed to a constant in our short runs (docs/codecs.md). The GAN stage brings it to r_t.
            lam = recipe["lambda_stage1"]
        t1, t2, _ = recipe["theta"]
        loss = lam * rate + t1 * MSE_SCALE * mse + t2 * (1 - s) + recipe["se_l1"] * model.se_l1()
        return loss, {"mse": mse.item(), "bpppc": bpppc.item(), "rate": rate.item(), "lambda": lam,
                      "ssim": s.item()}

    @classmethod
    def make_adversary(cls, model, recipe, device):
        """The discriminator for the GAN stage (``hsic train --gan``); None in the first stage."""
        if not recipe.get("gan"):
            return None
        return HiFiCAdversary(model.h_s[-2].out_channels, recipe, device)


# The raw-band variant (``--arch components=0``; the retired weights).
# Our widths (the paper's, from HiFiC, in brackets): E 16/24/32/48/64 (60/120/240/480/960), latent 48
# (220), hyperprior 32 (320), G 2 residual blocks (9), band adapter 16 channels (none: fixed 369 bands).
ARCH_SE = {"widths": [16, 24, 32, 48, 64], "M": 48, "hyper": 32, "blocks": 2, "se": "eg-norm",
           "conv3d": False, "adapter": 16, "gain": 16.0, "center": True, "input_gain": 20.0}
# HiFiC_3D: first E / last G convolutions 3D (3 x 3 x 3, 2 channels, 8 band groups), no SE blocks.
ARCH_3D = {"widths": [16, 24, 32, 48, 64], "M": 48, "hyper": 32, "blocks": 2, "se": "none",
           "conv3d": True, "groups": 8, "conv3d_channels": 2, "gain": 16.0,
           "center": True, "input_gain": 20.0}
_RAW_KEYS = ("widths", "M", "hyper", "blocks", "se", "conv3d", "adapter", "groups", "conv3d_channels", "gain",
             "center", "input_gain")
# The shipped variant: the stage's 16 planes in orthonormal units, E and G at /4 (M = 16 x 16 subbands of
# the Haar base) refining the base; widths: E's first convolution and its two stride-2 ones (G mirrors).
PLANES = {"components": COMPONENTS, "stage_step": STAGE_STEP, "whiten": False, "plane_widths": [16, 32, 64],
          "plane_hyper": 48, "refine": True}
_PLANE_KEYS = ("components", "blocks", "se", "conv3d", "groups", "conv3d_channels", "base_step",
               "refine")


_PAPER = ("Byju, Fuchs, Walda, Demir, Generative Adversarial Networks for Spatio-Spectral Compression of "
          "Hyperspectral Images (after Mentzer et al., HiFiC, NeurIPS 2020)")


@register
class HiFiCSE(_HiFiCCodec):
    info = CodecInfo(
        id="hific-se",
        title="HiFiC_SE: HiFiC (ChannelNorm, hyperprior, GAN-trained generator) with SE blocks after every norm",
        paper=_PAPER,
        qualities=tuple(QUALITY_TARGETS),
        default_quality=2,
    )
    recipes = _recipes(ARCH_SE, PLANES)


@register
class HiFiC3D(_HiFiCCodec):
    info = CodecInfo(
        id="hific-3d",
        title="HiFiC_3D: HiFiC with 3D convolutions as the first encoder and last generator layers",
        paper=_PAPER,
        qualities=tuple(QUALITY_TARGETS),
        default_quality=2,
    )
    recipes = _recipes(ARCH_3D, PLANES)
