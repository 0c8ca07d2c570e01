"""The measured-quality floors of tests/floors.json (written by scripts/floors.py from the committed bench)."""

import json
from pathlib import Path

import pytest

TABLE = Path(__file__).resolve().parent / "floors.json"
REGENERATE = ("re-run the bench (hsic bench --data ../shared/data/hsi/test --out docs/benchmarks), commit it, "
              "and regenerate the table with `.venv/bin/python scripts/floors.py`")


def load() -> dict:
    return json.loads(TABLE.read_text())


def floor(codec: str, scene: str, quality) -> dict:
    """{psnr_db, sam_deg, min_psnr_db, max_sam_deg} of ``codec`` at ``quality`` on test scene ``scene``
    (for a codec with a continuous rate, ``quality`` is the bench's target, e.g. "bpppc=0.25").

    Fails (never skips) when the table has no entry: a codec or quality added later must be measured.
    """
    entry = load()["floors"].get(codec, {}).get(scene, {}).get(str(quality))
    if entry is None:
        pytest.fail(f"no quality floor for {codec} {quality} on {scene} in {TABLE.name}: {REGENERATE}")
    return entry
