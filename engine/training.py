"""Training of learned codecs: loss = lmbda * MSE + rate (bits per value), CompressAI style.

Scenes arrive as numpy cubes (the caller reads the rasters; engine knows nothing of GDAL). Each step
draws one scene at random (band counts differ between sensors, so a batch comes from one scene) and
a batch of training samples from it, as the codec class defines them. Scenes are drawn sensor by
sensor (see :func:`sensor_groups`).
"""

from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from engine.errors import CancelledError, InputError
from engine.normalise import fill_invalid, normalisation, valid_mask, valid_range


@dataclass(frozen=True)
class TrainConfig:
    codec: str
    quality: int
    steps: int = 4000
    batch: int = 256
    lr: float = 1e-3
    seed: int = 0
    device: str = "auto"


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


def train(config: TrainConfig, scenes: list[tuple[str, np.ndarray, float | None]], out_dir: Path,
          progress: Callable[[int, int, dict], "bool | None"] | None = None, init: Path | None = None) -> dict:
    """Train ``config.codec`` at ``config.quality`` on ``scenes`` [(name, cube, nodata)].

    Writes ``<codec>-q<quality>.pt`` (weights) and ``.json`` (seed, config, data list, final losses)
    into ``out_dir`` and returns the record. ``init``: a weights file to fine-tune (its architecture
    is kept) instead of training from scratch. ``progress(step, steps, metrics)`` returning False
    cancels (CancelledError, nothing written).
    """
    import torch

    from engine.codecs.base import file_sha256
    from engine.codecs.learned import save_weights
    from engine.device import resolve_device
    from engine.registry import codec_class

    cls = codec_class(config.codec)
    quality = cls.info.check_quality(config.quality)
    if not hasattr(cls, "recipes"):
        raise InputError(f"codec {config.codec!r} has nothing to train")
    if not scenes:
        raise InputError("no training scenes given")
    recipe = cls.recipes[quality]
    device = resolve_device(config.device)

    torch.manual_seed(config.seed)
    rng = np.random.default_rng(config.seed)
    data = [prepare_scene(cube, nodata) for _, cube, nodata in scenes]
    groups = sensor_groups([name for name, _, _ in scenes])

    if init is None:
        model = cls.build_model(recipe["arch"]).to(device).train()
    else:
        from engine.codecs.learned import load_weights

        archs: list[dict] = []  # the architecture stored in the file, which may differ from the recipe's
        model = load_weights(lambda arch: archs.append(arch) or cls.build_model(arch), init).to(device).train()
        recipe = {**recipe, "arch": archs[0]}
    main_params = [p for n, p in model.named_parameters() if not n.endswith(".quantiles")]
    aux_params = [p for n, p in model.named_parameters() if n.endswith(".quantiles")]
    opt = torch.optim.Adam(main_params, lr=config.lr)
    aux_opt = torch.optim.Adam(aux_params, lr=1e-3)
    sched = torch.optim.lr_scheduler.MultiStepLR(opt, [int(config.steps * 0.75), int(config.steps * 0.9)], 0.2)
    lmbda = recipe["lmbda"]

    t0 = time.time()
    ema: dict[str, float] = {}
    for step in range(1, config.steps + 1):
        group = groups[rng.integers(len(groups))]
        k = group[rng.integers(len(group))]
        x_np, valid_np = data[k]
        xb, vb = (torch.from_numpy(a).to(device) for a in cls.training_batch(x_np, valid_np, rng, config.batch))

        out = model(xb)
        w = vb.float()
        mse = ((out["x_hat"] - xb) ** 2 * w).sum() / w.sum().clamp_min(1.0)
        bits = sum((-torch.log2(lk)).sum() for lk in ([out["likelihoods"]] if torch.is_tensor(out["likelihoods"])
                                                       else out["likelihoods"].values()))
        bpv = bits / xb.numel()
        loss = lmbda * mse + bpv
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(main_params, 1.0)
        opt.step()
        sched.step()
        aux = model.aux_loss()
        aux_opt.zero_grad()
        aux.backward()
        aux_opt.step()

        for name, v in (("loss", loss.item()), ("mse", mse.item()), ("bpppc", bpv.item())):
            ema[name] = v if name not in ema else 0.98 * ema[name] + 0.02 * v
        if progress is not None:
            if progress(step, config.steps, {**ema, "psnr": -10 * math.log10(max(ema["mse"], 1e-12))}) is False:
                raise CancelledError("training cancelled")

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"{config.codec}-q{quality}"
    model = model.cpu().eval()
    save_weights(model, recipe["arch"], out_dir / f"{stem}.pt")
    record = {
        "codec": config.codec,
        "quality": quality,
        "config": asdict(config),
        "recipe": recipe,
        "data": [{"name": name, "shape": list(cube.shape), "dtype": str(cube.dtype)} for name, cube, _ in scenes],
        "final": {k: round(v, 6) for k, v in ema.items()},
        "init": None if init is None else {"path": str(init), "sha256": file_sha256(Path(init))},
        "seconds": round(time.time() - t0, 1),
        "torch": torch.__version__,
    }
    (out_dir / f"{stem}.json").write_text(json.dumps(record, indent=2) + "\n")
    return record
