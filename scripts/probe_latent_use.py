"""Does a spatial codec's encoder use its input? A short plain-MSE training probe.

Trains a fresh model of a codec's recipe for a few steps on random patches of one training scene
(MSE only, no rate term) and prints, every 50 steps, the MSE and how much the latent y and the output
differ between the patches of a batch. For models with g_a and _in (the Balle-family ones). A latent that is the same for every patch (the hific-3d
collapse, docs/codecs.md) shows as a "y differs" figure near 0 while "y std" is large. The recipes
now code tiles relative to their per-band means (``center``); ``--arch center=false`` gives the
collapsing recipe back.

    OMP_NUM_THREADS=2 .venv/bin/python scripts/probe_latent_use.py --codec hific-3d --steps 101
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--codec", default="hific-3d")
    ap.add_argument("--quality", type=int, default=2)
    ap.add_argument("--steps", type=int, default=101)
    ap.add_argument("--arch", action="append", default=[], metavar="KEY=VALUE",
                    help="change one key of the recipe's architecture, e.g. center=false")
    ap.add_argument("--scene", default=str(ROOT.parent / "shared/data/hsi/train/aviris_losangeles_urban_1.tif"))
    args = ap.parse_args()

    import torch
    from osgeo import gdal

    from engine.codecs.spatial import random_patches
    from engine.registry import codec_class
    from engine.training import prepare_scene

    torch.manual_seed(0)
    cls = codec_class(args.codec)
    arch = dict(cls.recipes[args.quality]["arch"])
    for kv in args.arch:
        key, value = kv.split("=", 1)
        arch[key] = json.loads(value)
    model = cls.build_model(arch).train()
    x, valid = prepare_scene(gdal.Open(args.scene).ReadAsArray(), None)
    rng = np.random.default_rng(0)
    opt = torch.optim.Adam([p for n, p in model.named_parameters() if not n.endswith("quantiles")], lr=1e-3)
    for step in range(args.steps):
        xb = torch.from_numpy(random_patches(x, valid, rng, 4, 64)[0])
        mse = ((model(xb)["x_hat"] - xb) ** 2).mean()
        opt.zero_grad()
        mse.backward()
        opt.step()
        if step % 50 == 0:
            with torch.no_grad():
                model.eval()
                xin = model.centre(xb)[0] if hasattr(model, "centre") else xb
                y = model.g_a(model._in(xin))
                out = model(xb)["x_hat"]
                model.train()
            print(f"step {step}: mse {mse.item():.5f}  y std {y.std().item():.3f}  "
                  f"y differs {(y[0] - y[1]).abs().mean().item():.4f}  output differs "
                  f"{out.std(0).mean().item():.4f}  input differs {xb.std(0).mean().item():.4f}", flush=True)


if __name__ == "__main__":
    main()
