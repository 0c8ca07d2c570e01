r"""A weights file on a fixed Haar base (engine.models.stage_base) with another quality's quantiser step.

The step (arch key ``base_step``) is no parameter: ``hsic train --init`` keeps the architecture stored in
the file, so fine-tuning quality Q from another quality's weights needs a copy whose architecture carries
Q's step (its recipe's). The learned values are copied unchanged (float32); training then adapts them.

    .venv/bin/python scripts/restep_weights.py runs/x/mdim-drf-q2.pt --codec mdim-drf --quality 1 \
        --out runs/x/init-q1.pt
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from engine.codecs.learned import load_weights, save_weights
    from engine.registry import codec_class

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("weights")
    ap.add_argument("--codec", required=True)
    ap.add_argument("--quality", type=int, required=True)
    ap.add_argument("--out", required=True)
    a = ap.parse_args()
    cls = codec_class(a.codec)
    step = cls.recipes[a.quality]["arch"].get("base_step")
    if not step:
        sys.exit(f"{a.codec} q{a.quality}'s recipe has no base_step")
    archs: list[dict] = []
    model = load_weights(lambda arch: archs.append(arch) or cls.build_model(arch), a.weights)
    if not archs[0].get("base_step"):
        sys.exit(f"{a.weights} is not on a Haar base (no base_step)")
    save_weights(model, {**archs[0], "base_step": step}, a.out)
    print(f"{a.out}: base_step {archs[0]['base_step']} -> {step}")


if __name__ == "__main__":
    main()
