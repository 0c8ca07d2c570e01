"""The QGIS desktop under Xvfb with the plugin installed from the zip (`make plugin`) into a throw-away
profile: the toolbox lists the hsic algorithms, and a 512 x 512 x 224 .hsic (the bundled sample mirrored
to that size, default codec) opened through hsic:open draws at every zoom a user reaches from "zoom to
layer" by zooming out twice and in once, like the source GeoTIFF drawn with the same renderer. Zoomed
out, GDAL reads into buffers smaller than their windows (the case that once left the canvas blank).
A screenshot of the window is saved (pytest's tmp folder; also copied into the folder HSIC_ARTEFACTS
names, and to the repo path HSIC_SCREENSHOT names, e.g. docs/img/qgis.png). About 60-90 s on 2 cores,
most of it compressing the scene and numba compiling the decoder in the freshly installed plugin.

This is the test that caught the desktop-only crash that qgis_plugin/llvm_guard.py prevents."""

import os
import shutil
import sys
from pathlib import Path

import pytest
from desktop_harness import MISSING, REPO, desktop_paths, run_in_desktop

pytestmark = pytest.mark.qgis

SIZE = 512
# Mean |screenshot - reference| over the layer's footprint, in 8-bit levels per channel. What differs
# legitimately: compression error, and averaged stored overviews against the GeoTIFF's nearest sampling.
MAX_MEAN_DIFF = 6.0


def rgb(png: Path):
    """(rows, cols, 3) uint8 of a PNG, read with GDAL's PNG driver."""
    from osgeo import gdal

    ds = gdal.Open(str(png))
    return ds.ReadAsArray()[:3].transpose(1, 2, 0)


def compare(state: dict) -> dict:
    """Footprint (reference pixels that are not background), share of it drawn, and mean difference."""
    shot, ref = rgb(Path(state["screenshot"])).astype(int), rgb(Path(state["reference"])).astype(int)
    assert shot.shape == ref.shape, f"{state['name']}: screenshot {shot.shape} vs reference {ref.shape}"
    footprint = (ref != 255).any(axis=2)
    drawn = (shot != 255).any(axis=2) & footprint
    return {"footprint_px": int(footprint.sum()), "drawn_share": drawn.sum() / max(1, footprint.sum()),
            "mean_diff": float(abs(shot - ref)[footprint].mean()) if footprint.any() else 255.0}


@pytest.mark.skipif(bool(MISSING), reason=f"needs {' and '.join(MISSING)} on PATH (Debian packages xvfb, qgis)")
def test_desktop_lists_algorithms_and_renders_an_opened_hsic(tmp_path):
    import hsi_gdal

    sys.path.insert(0, str(REPO / "scripts"))
    try:
        from bench_qgis import mirrored_sample  # the scene bench_qgis.py times, drawn here
    finally:
        sys.path.pop(0)

    (tmp_path / "data").mkdir()
    source, hsic = tmp_path / "data" / "enmap.tif", tmp_path / "data" / "enmap.hsic"
    mirrored_sample(source, SIZE)
    hsi_gdal.Translate(str(hsic), str(source), device="cpu")  # default codec; its sidecar with statistics

    result = run_in_desktop(tmp_path, Path(__file__).with_name("desktop_script.py"),
                            {"HSIC_DESKTOP_FILE": str(hsic), "HSIC_DESKTOP_SOURCE": str(source)},
                            keep={"qgis.png": "qgis_desktop.png"})
    _, profile, out = desktop_paths(tmp_path)
    assert not result["errors"], "\n".join(result["errors"])
    assert result["toolbox"] == ["hsic:compress", "hsic:decompress", "hsic:evaluate", "hsic:open", "hsic:train"]
    assert result["engine_from"].startswith(str(profile)), "QGIS did not use the plugin installed from the zip"
    assert result["valid"] and result["layers"] == 1 and result["crs"] == "EPSG:32633" and result["bands"] == 224
    assert result["size"] == [SIZE, SIZE]
    assert [s["name"] for s in result["states"]] == ["zoom to layer", "zoom out", "zoom out again", "zoom in"]
    seen = []
    for state in result["states"]:
        got = compare(state)
        seen.append(f"{state['name']}: {state['scene_px_per_screen_px']} scene px per screen px, "
                    f"{got['footprint_px']} px footprint, {got['drawn_share']:.1%} drawn, "
                    f"mean difference {got['mean_diff']:.2f}, drawn in {state['draw_s']} s")
        assert got["footprint_px"] > 1000, f"the reference drew nothing ({seen[-1]})"
        assert got["drawn_share"] > 0.98 and got["mean_diff"] <= MAX_MEAN_DIFF, (
            "the canvas differs from the source drawn the same way:\n" + "\n".join(seen))
    # The zoomed-out states read buffers smaller than their windows.
    assert max(s["scene_px_per_screen_px"] for s in result["states"]) > 2
    print("\n".join(seen))
    assert result["screenshot_saved"] and (out / "qgis.png").stat().st_size > 10_000
    if os.environ.get("HSIC_SCREENSHOT"):
        shutil.copy(out / "qgis.png", REPO / os.environ["HSIC_SCREENSHOT"])
