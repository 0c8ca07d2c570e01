"""Train the KLT codec's learned context model on train/ scenes; writes engine/weights/klt_context.npz.

    .venv/bin/python scripts/train_klt_context.py [--data ../shared/data/hsi/train] [--hold-out a,b]

Held-out train scenes (never test/) measure the model on scenes it did not see.
"""

from __future__ import annotations

import argparse
import glob
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from engine import context_models as cm  # noqa: E402
from engine import context_training as ct  # noqa: E402
from scripts.klt_scenes import load_scene  # noqa: E402

STEPS = (0.0005, 0.001, 0.002, 0.004, 0.008, 0.016, 0.03)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data", default=os.path.join(os.path.dirname(__file__), "..", "..", "shared", "data", "hsi",
                                                   "train"))
    ap.add_argument("--hold-out", default="enmap_potsdam_b,aviris_losangeles_urban_2,samson_normalised")
    ap.add_argument("--per-set", type=int, default=40000)
    ap.add_argument("--hidden", type=int, default=12)
    ap.add_argument("--epochs", type=int, default=30)
    ap.add_argument("--out", default=cm.WEIGHTS_PATH)
    a = ap.parse_args(argv)
    if os.path.basename(os.path.normpath(a.data)) == "test":
        print("refusing to train on test/", file=sys.stderr)
        return 2
    held = set(a.hold_out.split(",")) if a.hold_out else set()
    rng = np.random.default_rng(0)
    train, val = [], []
    t0 = time.time()
    for path in sorted(glob.glob(os.path.join(a.data, "*.tif"))):
        name = os.path.splitext(os.path.basename(path))[0]
        x, valid = load_scene(path)[:2]
        (val if name in held else train).append(ct.quantised_planes(x, valid, STEPS))
    print(f"{len(train)} training, {len(val)} held-out scenes ({time.time() - t0:.0f} s)")
    preds = ct.fit_predictors([p for s in train for p in s])
    print("predictors (1/256):\n", preds)
    f, r = ct.training_samples([p for s in train for p in s], preds, a.per_set, rng)
    print(f"{r.size} training samples ({time.time() - t0:.0f} s)")
    w = ct.train_mlp(f, r, a.hidden, a.epochs)
    w = cm.LearnedWeights(preds, w.w1, w.b1, w.w2, w.b2)
    print(f"fixed point, train: {ct.fixed_point_bits(w, f, r):.4f} bits/sample")
    if val:
        fv, rv = ct.training_samples([p for s in val for p in s], preds, a.per_set, rng)
        print(f"fixed point, held out: {ct.fixed_point_bits(w, fv, rv):.4f} bits/sample")
    cm.save_learned(w, a.out)
    print(f"wrote {a.out} ({time.time() - t0:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
