"""Rewrite weights files with float16 parameters (half the size), as the shipped ones are stored.

    .venv/bin/python scripts/half_weights.py runs/hific-se-q1.pt ... --out engine/weights

Each file is loaded through the codec's own model (so only a valid weights file is converted) and
written with :func:`engine.codecs.learned.save_weights` (``half=True``); its training record
(``.json`` beside it) is copied along. The codec is found from the file name (``<codec>-q<N>.pt``).
"""

from __future__ import annotations

import argparse
import re
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("files", nargs="+", type=Path)
    ap.add_argument("--out", type=Path, required=True, help="folder for the converted files")
    args = ap.parse_args()

    from engine.codecs.learned import load_weights, save_weights
    from engine.registry import codec_class

    args.out.mkdir(parents=True, exist_ok=True)
    for path in args.files:
        m = re.fullmatch(r"(.+)-q(\d+)\.pt", path.name)
        if not m:
            sys.exit(f"{path}: expected a name <codec>-q<N>.pt")
        cls = codec_class(m.group(1))
        archs: list[dict] = []  # the file's own architecture, as load_weights reads it
        model = load_weights(lambda arch: archs.append(arch) or cls.build_model(arch), path)
        save_weights(model, archs[0], args.out / path.name, half=True)
        record = path.with_suffix(".json")
        if record.is_file() and record.resolve() != (args.out / record.name).resolve():
            shutil.copyfile(record, args.out / record.name)
        print(f"{path} ({path.stat().st_size / 1e6:.1f} MB) -> {args.out / path.name} "
              f"({(args.out / path.name).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    main()
