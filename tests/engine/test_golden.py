"""Golden files: every file written by an earlier version decodes to the same samples, forever.

tests/golden/ holds one small .hsic per codec and quality (and a few format features), written once by
``scripts/golden.py write`` and never refreshed. A failure here means old archives no longer decode as
they did: a format change must add a reader, a retrained codec must keep its old weights for decoding.
A failure on another machine with the same code is a cross-machine determinism defect, not a reason to
loosen the check. Where a kind of CPU is known to decode a case differently (the torch codecs' float
arithmetic differs by instruction set and vendor: scripts/golden.py, ``differs_on``), the case is an expected
failure on that class, strict: once it decodes as written again, the stale record fails the test.
"""

import importlib.util
import json

import pytest

from tests.conftest import ROOT

_spec = importlib.util.spec_from_file_location("golden", ROOT / "scripts" / "golden.py")
golden = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(golden)
INDEX = json.loads(golden.INDEX.read_text())


@pytest.mark.parametrize("name", sorted(INDEX))
def test_golden_file_decodes_to_the_same_samples(name):
    path = golden.GOLDEN / f"{name}.hsic"
    same = golden.decode_outcome(path) == INDEX[name]["decoded_sha256"]
    if golden.differs_here(INDEX[name]):
        assert not same, f"{path.name} decodes as written on {golden.cpu_class()} again: drop it from differs_on"
        pytest.xfail(f"known cross-machine defect: {path.name} decodes differently on {golden.cpu_class()}")
    assert same, f"{path.name} no longer decodes to the samples it decoded to when it was written"


def test_every_codec_and_quality_has_a_golden_file():
    missing = [c["name"] for c in golden.cases() if c["name"] not in INDEX]
    assert not missing, f"no golden file for {missing}: run `.venv/bin/python scripts/golden.py write`"
