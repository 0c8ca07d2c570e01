"""Training of learned codecs: loss = lmbda * MSE + rate (bits per value), CompressAI style.

Scenes arrive as numpy cubes or as loaders of them (the caller reads the rasters; engine knows nothing
of GDAL). Each step draws one scene at random (band counts differ between sensors, so a batch comes
from one scene) and a batch of training samples from it, as the codec class defines them. Scenes are
drawn sensor by sensor (see :func:`sensor_groups`). Large datasets (HySpecNet-11k: 11k patches) are
loaded lazily with a small cache of prepared scenes.

What a codec trains with (its recipes, stages, loss, batches, adversary) it declares on its class: the
training hooks of :class:`engine.codecs.learned.LearnedCodecMixin`, documented there. The last stage
of a codec trained in stages writes ``<codec>-q<quality>.pt``; an earlier one ``<codec>-<stage>-q<quality>.pt``,
to be passed as ``init`` to the next.

A checkpoint (model, optimisers, random states) is written every ``checkpoint_every`` steps; with
``resume`` a run interrupted at any point continues from its last checkpoint as if never stopped.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import OrderedDict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from engine.codecs.learned import LearnedCodecMixin, load_weights, save_weights
from engine.device import resolve_device
from engine.errors import CancelledError, CodecError, InputError
from engine.normalise import fill_invalid, normalisation, valid_mask, valid_range
from engine.registry import codec_class
from engine.weight_files import file_sha256


@dataclass(frozen=True)
class TrainConfig:
    codec: str
    quality: int
    steps: int | None = None  # None: the codec's recipe says (4000 when it does not)
    batch: int | None = None  # None: the codec's recipe says (256 when it does not)
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"
    init: str | None = None  # weights file to start from (fine-tuning); same architecture
    arch: dict | None = None  # keys replacing the recipe's architecture (e.g. a paper's ablation variant)
    checkpoint_every: int = 500
    resume: bool = False
    stage: str | None = None  # for codecs trained in stages (see the module docstring)
    gan: bool = False  # the adversarial stage of codecs that define make_adversary (recipe["gan"])


@dataclass(frozen=True)
class Scene:
    """A training scene: its name (the sensor is the prefix before '_') and how to read it."""

    name: str
    load: Callable[[], tuple[np.ndarray, float | None]]  # -> (bands, rows, cols) cube, nodata


def as_scenes(items) -> list[Scene]:
    """Accept Scene objects or (name, cube, nodata) tuples."""
    out = []
    for item in items:
        if isinstance(item, Scene):
            out.append(item)
        else:
            name, cube, nodata = item
            out.append(Scene(name, lambda cube=cube, nodata=nodata: (cube, nodata)))
    return out


# Architecture keys that a quality sets without changing the parameters (engine.models.stage_base's step).
QUALITY_ARCH_KEYS = ("base_step",)


def prepare_scene(cube: np.ndarray, nodata: float | None) -> tuple[np.ndarray, np.ndarray]:
    """Normalise a (bands, rows, cols) cube as the compressor does; returns (x, valid)."""
    valid = valid_mask(cube, nodata)
    lo, hi = valid_range(cube, valid)
    offset, scale = normalisation(lo, hi, cube.shape[0])
    x = ((cube.astype(np.float64) - offset[0]) / scale[0]).astype(np.float32)
    return fill_invalid(x, valid), valid


def sensor_groups(names: list[str]) -> list[list[int]]:
    """Scene indices grouped by sensor (the file-name prefix before the first '_').

    Training draws a sensor first, then a scene: a sensor with many scenes in the folder (AVIRIS here)
    must not drown one with few (EnMAP).
    """
    groups: dict[str, list[int]] = {}
    for i, name in enumerate(names):
        groups.setdefault(Path(name).name.split("_")[0].lower(), []).append(i)
    return list(groups.values())


def _atomic_save(obj, path: Path) -> None:
    import torch

    tmp = path.with_name(path.name + ".partial")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def train(config: TrainConfig, scenes: Sequence, out_dir: Path,
          progress: Callable[[int, int, dict], "bool | None"] | None = None, init: Path | None = None,
          cache_scenes: int = 64) -> dict:
    """Train ``config.codec`` at ``config.quality`` on ``scenes`` (Scene objects or (name, cube, nodata)).

    Writes ``<codec>-q<quality>.pt`` (weights) and ``.json`` (seed, config, data list, final losses)
    into ``out_dir`` and returns the record. ``<codec>-q<quality>.ckpt`` holds the last checkpoint
    while the run lasts (removed at the end). ``init`` (or ``config.init``): a weights file to fine-tune
    (its architecture is kept) instead of training from scratch. ``progress(step, steps, metrics)``
    returning False cancels (CancelledError, nothing written).
    """
    import torch

    cls = codec_class(config.codec)
    quality = cls.info.check_quality(config.quality)
    if not issubclass(cls, LearnedCodecMixin) or quality not in cls.recipes:
        raise InputError(f"codec {config.codec!r} has nothing to train")
    scenes = as_scenes(scenes)
    if not scenes:
        raise InputError("no training scenes given")
    recipe = cls.recipes[quality]
    stages = cls.stages
    stage = config.stage or (list(stages)[-1] if stages else None)
    if stage is not None:
        if stage not in stages:
            known = f"; its stages: {', '.join(stages)}" if stages else ""
            raise InputError(f"codec {config.codec!r} has no training stage {stage!r}{known}")
        recipe = {**recipe, **stages[stage], "stage": stage}
    if config.gan:
        if not cls.adversarial:
            raise InputError(f"codec {config.codec!r} has no adversarial (GAN) training stage")
        recipe = {**recipe, "gan": True}
    steps = config.steps or recipe.get("steps", 4000)
    batch = config.batch or recipe.get("batch", 256)
    device = resolve_device(config.device)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    final = stage is None or stage == list(stages)[-1]
    stem = f"{config.codec}-q{quality}" if final else f"{config.codec}-{stage}-q{quality}"
    ckpt_path = out_dir / f"{stem}.ckpt"

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    groups = sensor_groups([s.name for s in scenes])
    cache: OrderedDict[int, tuple[np.ndarray, np.ndarray]] = OrderedDict()

    def scene(k: int) -> tuple[np.ndarray, np.ndarray]:
        if k not in cache:
            cache[k] = prepare_scene(*scenes[k].load())
            if len(cache) > cache_scenes:
                cache.popitem(last=False)
        cache.move_to_end(k)
        return cache[k]

    init = init or config.init
    if config.arch:
        if init is not None:
            raise InputError("an architecture change cannot fine-tune: the weights file fixes the architecture")
        unknown = sorted(set(config.arch) - set(recipe["arch"]))
        if unknown:
            raise InputError(f"codec {config.codec!r} has no architecture key {unknown[0]!r}; "
                             f"it has {', '.join(recipe['arch'])}")
        recipe = {**recipe, "arch": {**recipe["arch"], **config.arch}}
    if init is None:
        # A generator: scenes are read only by codecs whose architecture depends on them.
        recipe = {**recipe, "arch": cls.prepare_arch(dict(recipe["arch"]),
                                                     ((s.name, *scene(k)) for k, s in enumerate(scenes)
                                                      if k < cache_scenes))}
        model = cls.build_model(recipe["arch"]).to(device).train()
    else:
        # The architecture stored in the file, which may differ from the recipe's; but the keys that belong
        # to the quality, not to the parameters (a quantiser step), are the recipe's: fine-tuning q1 from
        # q2's weights must train q1's step.
        archs: list[dict] = []

        def build(arch: dict):
            arch = {**arch, **{k: recipe["arch"][k] for k in QUALITY_ARCH_KEYS if k in recipe["arch"]}}
            archs.append(arch)
            return cls.build_model(arch)

        model = load_weights(build, init).to(device).train()
        recipe = {**recipe, "arch": archs[0]}
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=config.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(steps * 0.75), int(steps * 0.9)], 0.2)
    adversary = cls.make_adversary(model, recipe, device)

    first = 1
    ema: dict[str, float] = {}
    if config.resume and ckpt_path.is_file():
        ck = torch.load(ckpt_path, map_location=device, weights_only=True)
        if ck["codec"] != config.codec or ck["quality"] != quality or ck["steps"] != steps:
            raise InputError(f"{ckpt_path} belongs to another run ({ck['codec']} q{ck['quality']}, "
                             f"{ck['steps']} steps); remove it or change --out")
        model.load_state_dict(ck["model"])
        opt.load_state_dict(ck["opt"])
        aux_opt.load_state_dict(ck["aux_opt"])
        sched.load_state_dict(ck["sched"])
        if adversary is not None:
            adversary.load_state_dict(ck["adversary"])
        rng.bit_generator.state = ck["rng"]
        torch.set_rng_state(ck["torch_rng"])
        ema = dict(ck["ema"])
        first = ck["step"] + 1

    t0 = time.time()
    for step in range(first, steps + 1):
        group = groups[rng.integers(len(groups))]
        x_np, valid_np = scene(group[rng.integers(len(group))])
        xb, vb, *extra = (torch.from_numpy(a).to(device)
                          for a in cls.training_batch(x_np, valid_np, rng, batch, recipe))

        out = model(xb)
        loss, metrics = cls.training_loss(model, out, xb, vb, recipe, *extra)
        if adversary is not None:
            loss = loss + adversary.generator_loss(out, xb, vb)
        if not torch.isfinite(loss):
            # Diverged: stop before NaN reaches the weights (a NaN file would be written and fail later).
            raise CodecError(f"training diverged at step {step} (the loss is {loss.item()}); no weights "
                             "written; try a lower --lr")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        sched.step()
        aux = model.aux_loss()
        aux_opt.zero_grad()
        aux.backward()
        aux_opt.step()
        if adversary is not None:
            metrics.update(adversary.step(out, xb, vb))

        for name, v in (("loss", loss.item()), *metrics.items()):
            ema[name] = v if name not in ema else 0.98 * ema[name] + 0.02 * v
        if step % config.checkpoint_every == 0 and step < steps:
            _atomic_save({"codec": config.codec, "quality": quality, "steps": steps, "step": step,
                          "model": model.state_dict(), "opt": opt.state_dict(), "aux_opt": aux_opt.state_dict(),
                          "sched": sched.state_dict(), "rng": rng.bit_generator.state,
                          "torch_rng": torch.get_rng_state(), "ema": ema,
                          "adversary": None if adversary is None else adversary.state_dict()}, ckpt_path)
        if progress is not None:
            if progress(step, steps, {**ema, "psnr": -10 * math.log10(max(ema["mse"], 1e-12))}) is False:
                raise CancelledError("training cancelled")

    model = model.cpu().eval()
    save_weights(model, recipe["arch"], out_dir / f"{stem}.pt")
    record = {
        "codec": config.codec,
        "quality": quality,
        "weights_file": f"{stem}.pt",
        "config": {**asdict(config), "steps": steps, "batch": batch},
        "recipe": recipe,
        "data": {"count": len(scenes), "names": [s.name for s in scenes[:200]]},
        "final": {k: round(v, 6) for k, v in ema.items()},
        "init": None if init is None else {"path": str(init), "sha256": file_sha256(Path(init))},
        "seconds": round(time.time() - t0, 1),
        "resumed_at": first if first > 1 else None,
        "torch": torch.__version__,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    ckpt_path.unlink(missing_ok=True)
    return record
