"""Retire installed weights before retrained ones replace them: each file moves to the archive under its
digest (engine.weight_files.archive_path), with its training record, so files written with it still decode.

    .venv/bin/python scripts/retire_weights.py s2cnet-q1.pt s2cnet-q2.pt s2cnet-q3.pt
    .venv/bin/python scripts/half_weights.py runs/s2cnet-q1.pt ... --out engine/weights   # then install
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    from engine.weight_files import archive_path, file_sha256, installed_path

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("names", nargs="+", help="installed weights file names, e.g. s2cnet-q2.pt")
    args = ap.parse_args()
    for name in args.names:
        src = installed_path(name)
        dst = archive_path(name, file_sha256(src))
        dst.parent.mkdir(exist_ok=True)
        # git mv keeps the history of the file; the record (.json) goes along under the same stem.
        subprocess.run(["git", "mv", str(src), str(dst)], cwd=ROOT, check=True)
        record = src.with_suffix(".json")
        if record.is_file():
            subprocess.run(["git", "mv", str(record), str(dst.with_suffix(".json"))], cwd=ROOT, check=True)
        print(f"{name} -> {dst.relative_to(ROOT)}")


if __name__ == "__main__":
    main()
