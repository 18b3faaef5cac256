"""The mosaic of inferred cuts equals the whole scene inferred at once, away from the
cuts; inside overlaps it follows the policy. Real `tessera infer` outputs throughout."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import synthetic_scene
from rasterio.transform import from_origin
from rasterio.windows import Window

from beam_pipelines.infer import run_infer
from beam_pipelines.mosaic import run_mosaic
from models.bundle import read_metadata

SIZE, CUT = 144, 96  # four 96x96 cuts of a 144x144 scene: 48-pixel overlaps
CUTS = {  # scene -> (row0, col0, acquisition time); "d" is the latest
    "a": (0, 0, "2024:01:01 10:00:00"),
    "b": (0, 48, "2024:03:01 10:00:00"),
    "c": (48, 0, "2024:02:01 10:00:00"),
    "d": (48, 48, "2024:04:01 10:00:00"),
}


def _read(path: Path) -> np.ndarray:
    with rasterio.open(path) as ds:
        return ds.read(1)


@pytest.mark.e2e
def test_mosaic_of_inferred_cuts_equals_whole_scene_inference(tmp_path: Path, tiny_bundle: str) -> None:
    whole = tmp_path / "scenes" / "whole.tif"
    whole.parent.mkdir()
    data = synthetic_scene(whole, SIZE, SIZE, seed=11, nodata_box=(80, 110, 20, 60))
    with rasterio.open(whole) as src:
        profile = src.profile
        for name, (r0, c0, when) in CUTS.items():
            window = Window(c0, r0, CUT, CUT)
            prof = {**profile, "width": CUT, "height": CUT, "transform": src.window_transform(window)}
            with rasterio.open(tmp_path / "scenes" / f"{name}.tif", "w", **prof) as dst:
                dst.write(src.read(window=window))
                dst.update_tags(TIFFTAG_DATETIME=when)
    assert profile["transform"] == from_origin(600000, 5400000, 1.5, 1.5)

    cuts_out, whole_out = tmp_path / "cuts", tmp_path / "whole"
    report = run_infer([str(tmp_path / "scenes" / f"{n}.tif") for n in CUTS], str(cuts_out),
                       model=tiny_bundle, tile_size=32)
    assert report.ok, report.failed
    assert run_infer([str(whole)], str(whole_out), model=tiny_bundle, tile_size=32).ok
    mosaic_report = run_mosaic(str(cuts_out), str(cuts_out), policy="latest", tile_size=64)
    assert mosaic_report.tiles_written == mosaic_report.tiles > 1

    reference = _read(whole_out / "landcover" / "whole" / "classes.tif")
    with rasterio.open(cuts_out / "landcover-mosaic" / "mosaic.vrt") as ds:
        col0, row0 = (round(v) for v in ~ds.transform * (600000, 5400000))
        mosaic = ds.read(1, window=Window(col0, row0, SIZE, SIZE), boundless=True, fill_value=255)

    halo = read_metadata(tiny_bundle).halo
    far = np.ones((SIZE, SIZE), dtype=bool)
    for line in (48, 96):  # every cut edge inside the whole scene
        far[line - halo : line + halo] = False
        far[:, line - halo : line + halo] = False
    np.testing.assert_array_equal(mosaic[far], reference[far])
    assert (mosaic == 255).sum() == (reference == 255).sum() == (data == 0).all(axis=0).sum()

    # inside overlaps the latest scene that has the pixel wins
    expected = np.full((SIZE, SIZE), 255, np.uint8)
    for name, (r0, c0, _) in sorted(CUTS.items(), key=lambda kv: kv[1][2]):
        classes = _read(cuts_out / "landcover" / name / "classes.tif")
        view = expected[r0 : r0 + CUT, c0 : c0 + CUT]
        np.copyto(view, classes, where=classes != 255)
    np.testing.assert_array_equal(mosaic, expected)
    # the cuts' own edge effects exist, so the far-from-cut mask is what makes this pass
    edges = [_read(cuts_out / "landcover" / n / "classes.tif") for n in CUTS]
    assert any((e != reference[r0 : r0 + CUT, c0 : c0 + CUT]).any() for e, (r0, c0, _) in zip(edges, CUTS.values(), strict=True))
