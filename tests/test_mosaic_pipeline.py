"""`tessera mosaic` end to end on the DirectRunner: exactness, policies, incremental
rebuilds, reprojection, post-processing of mosaic tiles."""

from __future__ import annotations

import json
from pathlib import Path

import mosaic_helpers as S
import numpy as np
import pytest
import rasterio
import rasterio.warp
from rasterio.warp import Resampling, reproject

from beam_pipelines.mosaic import main as mosaic_main
from beam_pipelines.mosaic import run_mosaic
from transforms.core.errors import ConfigError
from transforms.core.stac import validate_core

HALO = 8
TILE = 128


def read_mosaic(out: Path, product: str, rows: int, cols: int) -> np.ndarray:
    """The mosaic over the test grid's pixels [0, rows) x [0, cols), through the VRT."""
    with rasterio.open(out / f"{product}-mosaic" / "mosaic.vrt") as ds:
        col0, row0 = rasterio.transform.rowcol(ds.transform, S.ORIGIN_X + 0.1, S.ORIGIN_Y - 0.1)[::-1]
        window = rasterio.windows.Window(round(col0), round(row0), cols, rows)
        return ds.read(1, window=window, boundless=True, fill_value=255)


def snapshot(folder: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(folder)): (p.stat().st_ino, p.stat().st_mtime_ns)
            for p in folder.rglob("*") if p.is_file()}


def cut(big: np.ndarray, r0: int, r1: int, c0: int, c1: int, seed: int) -> np.ndarray:
    """A scene cut from the whole-scene output, with 'model edge effects' (different
    classes) within HALO pixels of every cut edge that is not an edge of the whole."""
    out = big[r0:r1, c0:c1].copy()
    h, w = out.shape
    edge = np.zeros_like(out, dtype=bool)
    if r0 > 0:
        edge[:HALO] = True
    if r1 < big.shape[0]:
        edge[h - HALO :] = True
    if c0 > 0:
        edge[:, :HALO] = True
    if c1 < big.shape[1]:
        edge[:, w - HALO :] = True
    out[edge] = (out[edge] + 1 + seed % 3) % 5
    return out


def test_latest_mosaic_equals_the_whole_scene_away_from_cuts(tmp_path: Path) -> None:
    big = S.synthetic_classes(300, 300, 7)
    big[250:, :40] = 255  # some no-data in the whole scene
    windows = {  # id: (r0, r1, c0, c1, datetime)
        "a": (0, 180, 0, 180, "2024-01-01T10:00:00Z"),
        "b": (0, 180, 120, 300, "2024-03-01T10:00:00Z"),
        "c": (120, 300, 0, 180, "2024-02-01T10:00:00Z"),
        "d": (120, 300, 120, 300, "2024-04-01T10:00:00Z"),
    }
    scenes = [S.Scene(i, cut(big, r0, r1, c0, c1, n), S.grid_transform(c0, r0), when)
              for n, (i, (r0, r1, c0, c1, when)) in enumerate(windows.items())]
    S.write_scene_outputs(tmp_path, scenes)
    report = run_mosaic(str(tmp_path), str(tmp_path), policy="latest", tile_size=TILE)
    assert report.tiles == 9 and report.tiles_written == 9

    mosaic = read_mosaic(tmp_path, "landcover", 300, 300)
    # the policy: each pixel comes from the latest scene that has it
    expected = np.full_like(big, 255)
    for s in sorted(scenes, key=lambda s: s.datetime):
        r0, _, c0, _, _ = windows[s.scene_id]
        h, w = s.classes.shape
        view = expected[r0 : r0 + h, c0 : c0 + w]
        np.copyto(view, s.classes, where=s.classes != 255)
    np.testing.assert_array_equal(mosaic, expected)
    # away from every cut edge (farther than the halo) it is the whole-scene output
    far = np.ones_like(big, dtype=bool)
    for line in (120, 180):
        far[line - HALO : line + HALO] = False
        far[:, line - HALO : line + HALO] = False
    np.testing.assert_array_equal(mosaic[far], big[far])
    assert (mosaic[~far] != big[~far]).any()  # the edge effects are real: the test can fail

    coll = json.loads((tmp_path / "landcover-mosaic" / "collection.json").read_text())
    validate_core(coll)
    assert len([link for link in coll["links"] if link["rel"] == "item"]) == 9
    assert coll["summaries"]["classification:classes"][1]["name"] == "building"
    # extents describe the data (300 x 300 pixels), not the 3 x 3 tiles of 128 pixels
    side = 300 * S.RES
    data_bbox = rasterio.warp.transform_bounds(S.CRS_UTM31, "EPSG:4326", S.ORIGIN_X, S.ORIGIN_Y - side,
                                               S.ORIGIN_X + side, S.ORIGIN_Y, densify_pts=21)
    assert coll["extent"]["spatial"]["bbox"][0] == pytest.approx(list(data_bbox), abs=1e-5)  # 1 m; tiles: 100+ m
    cat = json.loads((tmp_path / "catalog.json").read_text())
    assert {"rel": "child", "href": "./landcover-mosaic/collection.json"}.items() <= next(
        link for link in cat["links"] if link["href"] == "./landcover-mosaic/collection.json").items()
    item_path = next((tmp_path / "landcover-mosaic").glob("*/x*_y*.json"))
    item = json.loads(item_path.read_text())
    validate_core(item)
    assert item["assets"]["classes"]["href"] == "./classes.tif"
    assert item["properties"]["tessera:class_areas_m2"]
    with rasterio.open(item_path.parent / "classes.tif") as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.colormap(1)[4][:3] == (43, 140, 190)
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"


def test_priority_and_confidence_policies_in_overlaps(tmp_path: Path) -> None:
    a = np.full((100, 100), 1, np.uint8)
    b = np.full((100, 100), 2, np.uint8)
    conf_a = np.full((100, 100), 100, np.uint8)
    conf_b = np.full((100, 100), 50, np.uint8)
    conf_b[:, :25] = 250  # b is surer than a only on its left quarter
    S.write_scene_outputs(tmp_path / "in", [
        S.Scene("a", a, S.grid_transform(0, 0), "2024-01-01T00:00:00Z", conf_a),
        S.Scene("b", b, S.grid_transform(50, 0), "2024-02-01T00:00:00Z", conf_b),
    ])
    out = tmp_path / "prio"
    run_mosaic(str(tmp_path / "in"), str(out), policy="priority", priority=["a"], tile_size=TILE)
    m = read_mosaic(out, "landcover", 100, 150)
    assert (m[:, :100] == 1).all() and (m[:, 100:] == 2).all()

    out = tmp_path / "conf"
    assert mosaic_main(["--catalog", str(tmp_path / "in"), "--output", str(out), "--policy", "confidence",
                        "--tile-size", str(TILE)]) == 0
    m = read_mosaic(out, "landcover", 100, 150)
    assert (m[:, :50] == 1).all() and (m[:, 50:75] == 2).all()
    assert (m[:, 75:100] == 1).all() and (m[:, 100:] == 2).all()

    with pytest.raises(ConfigError, match="--priority"):
        run_mosaic(str(tmp_path / "in"), str(out), policy="priority", tile_size=TILE)


def test_adding_a_scene_rebuilds_only_the_tiles_it_touches(tmp_path: Path) -> None:
    first = [
        S.Scene("a", S.synthetic_classes(200, 200, 1), S.grid_transform(0, 0), "2024-01-01T00:00:00Z"),
        S.Scene("b", S.synthetic_classes(100, 100, 2), S.grid_transform(300, 0), "2024-01-02T00:00:00Z"),
    ]
    S.write_scene_outputs(tmp_path, first)
    report = run_mosaic(str(tmp_path), str(tmp_path), tile_size=TILE)
    assert report.tiles == 6 and report.tiles_written == 6
    mosaic_dir = tmp_path / "landcover-mosaic"
    before = snapshot(tmp_path)

    # nothing new: nothing rewritten, not even the Collection, the VRT or the catalog
    report = run_mosaic(str(tmp_path), str(tmp_path), tile_size=TILE)
    assert report.tiles_written == 0 and report.tiles_unchanged == 6
    assert snapshot(tmp_path) == before

    # a new scene over the tile column x=1 only (grid columns 128..255)
    new = S.Scene("c", S.synthetic_classes(150, 60, 3), S.grid_transform(150, 20), "2024-06-01T00:00:00Z")
    S.write_scene_outputs(tmp_path, [*first, new])
    report = run_mosaic(str(tmp_path), str(tmp_path), tile_size=TILE)
    assert report.tiles_written == 2 and report.tiles_unchanged == 4
    after = snapshot(mosaic_dir)
    old = {k: v for k, v in before.items() if k.startswith("landcover-mosaic/")}
    changed = {k.split("/")[1] for k, v in old.items() if after.get(k.split("/", 1)[1]) != v}
    assert {c for c in changed if c.startswith("x")} == {"x2341_y28191", "x2341_y28190"}
    assert not any(n.endswith(".tmp") or ".tmp-" in n for n in after)
    m = read_mosaic(tmp_path, "landcover", 200, 400)
    np.testing.assert_array_equal(m[20:170, 150:210], new.classes)


def test_reprojected_mosaic_uses_nearest_on_the_target_grid(tmp_path: Path) -> None:
    a = S.synthetic_classes(120, 120, 5)
    b = S.synthetic_classes(80, 80, 6)
    # b sits on a different (half-pixel shifted) grid: no shared grid, so --crs is needed
    tb = S.grid_transform(200, 0) @ rasterio.Affine.translation(0.5, 0)
    S.write_scene_outputs(tmp_path, [S.Scene("a", a, S.grid_transform(0, 0), "2024-01-01T00:00:00Z"),
                                     S.Scene("b", b, tb, "2024-01-02T00:00:00Z")])
    with pytest.raises(ConfigError, match="--crs"):
        run_mosaic(str(tmp_path), str(tmp_path), tile_size=64)
    report = run_mosaic(str(tmp_path), str(tmp_path), crs="EPSG:3857", resolution=2.5, tile_size=64)
    assert report.tiles_written and report.grids["landcover"]["crs"] == "EPSG:3857"
    with rasterio.open(tmp_path / "landcover-mosaic" / "mosaic.vrt") as ds:
        mosaic = ds.read(1)
        expected = np.full(mosaic.shape, 255, np.uint8)
        reproject(a, expected, src_transform=S.grid_transform(0, 0), src_crs=S.CRS_UTM31, src_nodata=255,
                  dst_transform=ds.transform, dst_crs=ds.crs, dst_nodata=255, resampling=Resampling.nearest)
    only_a = expected != 255
    assert only_a.sum() > 1000
    agree = (mosaic[only_a] == expected[only_a]).mean()
    assert agree > 0.99  # GDAL's warper and reproject() may differ on a few boundary pixels
    assert set(np.unique(mosaic)) <= {0, 1, 2, 3, 4, 255}


def test_mosaic_tiles_get_the_product_post_processing(tmp_path: Path) -> None:
    classes = np.zeros((100, 100), np.uint8)
    classes[10:30, 10:30] = 1  # one 20x20 building = 900 m^2 at 1.5 m
    classes[60:62, :] = 2  # a road
    S.write_scene_outputs(tmp_path, [S.Scene("u", classes, S.grid_transform(0, 0), "2024-01-01T00:00:00Z")],
                          product="urban")
    run_mosaic(str(tmp_path), str(tmp_path), tile_size=TILE)
    item_path = next((tmp_path / "urban-mosaic").glob("*/x*_y*.json"))
    item = json.loads(item_path.read_text())
    assert {"classes", "structures", "footprints", "density"} <= set(item["assets"])
    props = item["properties"]
    assert props["tessera:footprint_count"] == 1
    assert props["tessera:structures_area_m2"] == pytest.approx((400 + 200) * 2.25)
    import geopandas as gpd

    frame = gpd.read_parquet(item_path.parent / "footprints.parquet")
    assert frame["area_m2"].tolist() == [pytest.approx(900.0)]
