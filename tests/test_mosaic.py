"""The mosaic core: target grid, tile plan, policies, tile build (no Beam)."""

from __future__ import annotations

from pathlib import Path

import mosaic_helpers as S
import numpy as np
import pytest
from affine import Affine
from rasterio.crs import CRS

from transforms.core.errors import ConfigError
from transforms.core.mosaic import (
    NODATA,
    AssetIdentity,
    Contribution,
    MosaicTileKey,
    SceneOutput,
    TargetGrid,
    build_tile,
    plan_contributions,
    policy_class,
    resolve_grid,
)
from transforms.core.mosaic_io import discover_scene_outputs, join_url, tile_manifest
from transforms.core.mosaic_outputs import mosaic_vrt
from transforms.core.stac import validate_core

UTM = CRS.from_epsg(32631).to_wkt()


def scene(item_id: str, col: int, row: int, w: int, h: int, when: str = "2024-01-01T00:00:00Z",
          res: float = S.RES, crs: str = UTM) -> SceneOutput:
    t = Affine(res, 0, S.ORIGIN_X + col * res, 0, -res, S.ORIGIN_Y - row * res)
    ident = AssetIdentity(f"/x/{item_id}.tif", 1, "0")
    return SceneOutput(item_id, f"/x/{item_id}.json", "landcover", when, f"/x/{item_id}.tif", crs,
                       tuple(t)[:6], w, h, ident)


def test_grid_is_anchored_so_tiles_do_not_move_when_scenes_are_added() -> None:
    a = scene("a", 10, 10, 100, 100)
    b = scene("b", 500, 700, 100, 100)
    g1 = resolve_grid([a], tile_size=128)
    g2 = resolve_grid([a, b], tile_size=128)
    assert g1 == g2
    assert (g1.origin_x, g1.origin_y) == (0.0, 0.0)  # whole multiples of the resolution
    key = next(iter(g1.tiles_for_bounds(a.bounds)))
    left, bottom, right, top = g1.tile_bounds(key)
    assert left % (128 * S.RES) == 0 and top % (128 * S.RES) == 0


def test_grid_keeps_a_sub_pixel_phase_shared_by_all_inputs() -> None:
    a = scene("a", 0, 0, 10, 10)
    shifted = Affine(S.RES, 0, a.transform[2] + 0.25, 0, -S.RES, a.transform[5] + 0.5)
    a = SceneOutput(**{**a.__dict__, "transform": tuple(shifted)[:6]})
    grid = resolve_grid([a], tile_size=64)
    assert grid.origin_x == pytest.approx(0.25) and grid.origin_y == pytest.approx(0.5)
    assert grid.is_aligned(a)


def test_mixed_grids_need_an_explicit_crs_and_resolution() -> None:
    a = scene("a", 0, 0, 10, 10)
    b = scene("b", 0, 0, 10, 10, res=2.0)
    with pytest.raises(ConfigError, match="--crs"):
        resolve_grid([a, b], tile_size=64)
    grid = resolve_grid([a, b], crs="EPSG:3857", resolution=2.0, tile_size=64)
    assert CRS.from_wkt(grid.crs_wkt) == CRS.from_epsg(3857)
    assert not grid.is_aligned(a)
    # asking for the inputs' own grid keeps the copy path
    assert resolve_grid([a], crs="EPSG:32631", resolution=S.RES, tile_size=64).is_aligned(a)


def test_plan_owns_every_scene_pixel_exactly_once() -> None:
    grid = resolve_grid([scene("z", 0, 0, 1, 1)], tile_size=64)
    s = scene("a", 37, 90, 150, 101)
    seen = np.zeros((s.height, s.width), dtype=int)
    for c in plan_contributions(s, grid):
        assert c.src is not None
        sc, sr, w, h = c.src
        dc, dr, dw, dh = c.dst
        assert (w, h) == (dw, dh) and dc >= 0 and dc + dw <= 64 and dr >= 0 and dr + dh <= 64
        seen[sr : sr + h, sc : sc + w] += 1
        # the scene pixel lands on the same ground position in the tile
        t = grid.tile_transform(c.tile)
        a = s.affine
        assert (t.c + dc * t.a, t.f + dr * t.e) == pytest.approx((a.c + sc * a.a, a.f + sr * a.e))
    assert (seen == 1).all()


def test_reprojected_plan_covers_the_footprint() -> None:
    s = scene("a", 0, 0, 200, 200)
    grid = TargetGrid(CRS.from_epsg(3857).to_wkt(), 3.0, 64)
    tiles = plan_contributions(s, grid)
    assert tiles and all(c.src is None for c in tiles)
    assert len({c.tile for c in tiles}) == len(tiles)


def test_policy_names_and_unknown_policy() -> None:
    assert policy_class("latest").name == "latest"
    with pytest.raises(ConfigError, match="latest, confidence, priority"):
        policy_class("newest")


def _feed(policy: str, layers: list[tuple[str, str, np.ndarray, np.ndarray | None]], priority: tuple[str, ...] = ()) -> np.ndarray:
    strategy = policy_class(policy)(4, priority)
    contribs = [Contribution(MosaicTileKey(0, 0), scene(i, 0, 0, 4, 4, when), (0, 0, 4, 4), (0, 0, 4, 4))
                for i, when, _, _ in layers]
    data = {i: (c, conf) for i, _, c, conf in layers}
    for c in strategy.order(contribs):
        classes, conf = data[c.scene.item_id]
        strategy.feed(c.dst, classes, conf)
    return strategy.classes


def test_latest_priority_and_confidence_policies() -> None:
    old = np.full((4, 4), 1, np.uint8)
    new = np.full((4, 4), 2, np.uint8)
    new[0, 0] = NODATA  # the newest has a hole: the older scene fills it
    older_conf = np.full((4, 4), 100, np.uint8)
    newer_conf = np.full((4, 4), 50, np.uint8)
    newer_conf[3, 3] = 200
    layers = [("old", "2024-01-01T00:00:00Z", old, older_conf), ("new", "2024-06-01T00:00:00Z", new, newer_conf)]
    latest = _feed("latest", layers)
    assert latest[0, 0] == 1 and (latest.ravel()[1:] == 2).all()
    prio = _feed("priority", layers, ("old",))
    assert (prio == 1).all()
    conf = _feed("confidence", layers)
    expected = np.ones((4, 4), np.uint8)
    expected[3, 3] = 2
    assert (conf == expected).all()


def test_confidence_ties_go_to_the_latest_scene() -> None:
    a = np.full((4, 4), 1, np.uint8)
    b = np.full((4, 4), 2, np.uint8)
    c = np.full((4, 4), 120, np.uint8)
    out = _feed("confidence", [("a", "2024-01-01T00:00:00Z", a, c), ("b", "2024-02-01T00:00:00Z", b, c)])
    assert (out == 2).all()


def test_manifest_hash_tracks_inputs_policy_and_priority() -> None:
    grid = resolve_grid([scene("z", 0, 0, 1, 1)], tile_size=64)
    a, b = scene("a", 0, 0, 10, 10), scene("b", 0, 0, 10, 10)
    key = MosaicTileKey(0, -1)
    ca, cb = plan_contributions(a, grid)[0], plan_contributions(b, grid)[0]
    base = tile_manifest(key, [ca, cb], grid, "latest")["hash"]
    assert tile_manifest(key, [cb, ca], grid, "latest")["hash"] == base  # order-free
    assert tile_manifest(key, [ca], grid, "latest")["hash"] != base
    assert tile_manifest(key, [ca, cb], grid, "confidence")["hash"] != base
    p1 = tile_manifest(key, [ca, cb], grid, "priority", ("a", "b", "zzz"))["hash"]
    assert tile_manifest(key, [ca, cb], grid, "priority", ("a", "b"))["hash"] == p1  # unrelated ids ignored
    assert tile_manifest(key, [ca, cb], grid, "priority", ("b", "a"))["hash"] != p1
    touched = SceneOutput(**{**a.__dict__, "classes_identity": AssetIdentity(a.classes_url, 1, "1")})
    tc = plan_contributions(touched, grid)[0]
    assert tile_manifest(key, [tc, cb], grid, "latest")["hash"] != base


def test_build_tile_reads_real_cogs_and_skips_once_full(tmp_path: Path) -> None:
    full = S.synthetic_classes(64, 64, 3)
    partial = np.full((64, 64), 4, np.uint8)
    S.write_scene_outputs(tmp_path, [
        S.Scene("new", full, S.grid_transform(0, 0), "2024-02-01T00:00:00Z"),
        S.Scene("old", partial, S.grid_transform(0, 0), "2024-01-01T00:00:00Z"),
    ])
    scenes = discover_scene_outputs(str(tmp_path))
    assert [s.item_id for s in scenes] == ["new", "old"]
    assert scenes[0].classes[1].name == "building"
    grid = resolve_grid(scenes, tile_size=64)
    contribs = [c for s in scenes for c in plan_contributions(s, grid)]
    assert len(contribs) == 2
    result = build_tile(contribs[0].tile, contribs, grid, "latest")
    assert (result.classes == full).all()
    assert result.reads == 1 and result.contributors == ["new"]  # the old scene was never read


def test_join_url_and_vrt() -> None:
    assert join_url("gs://b/out/landcover/a/a.json", "./classes.tif") == "gs://b/out/landcover/a/classes.tif"
    assert join_url("/o/landcover/collection.json", "../catalog.json") == "/o/catalog.json"
    assert join_url("/o/c.json", "gs://x/y.tif") == "gs://x/y.tif"
    grid = TargetGrid(UTM, 1.5, 64)
    xml = mosaic_vrt(grid, [MosaicTileKey(0, 0), MosaicTileKey(1, -1)], S.CLASSES)
    assert 'rasterXSize="128" rasterYSize="128"' in xml
    assert '<DstRect xOff="64" yOff="64"' in xml


def test_helper_outputs_follow_the_contract(tmp_path: Path) -> None:
    """The hand-written per-scene outputs these tests use look like `tessera infer`'s."""
    import pystac
    import rasterio

    scene_ = S.Scene("scene-a", S.synthetic_classes(40, 50, 1), S.grid_transform(0, 0), "2024-05-01T10:00:00Z",
                     confidence=np.full((40, 50), 200, np.uint8))
    assert S.write_scene_outputs(tmp_path, [scene_]).exists()
    item = pystac.Item.from_file(str(tmp_path / "landcover" / "scene-a" / "scene-a.json"))
    validate_core(item.to_dict())
    assert item.assets["classes"].href == "./classes.tif"
    with rasterio.open(tmp_path / "landcover" / "scene-a" / "classes.tif") as ds:
        assert ds.dtypes[0] == "uint8" and ds.nodata == 255 and ds.colormap(1)[1][:3] == (215, 48, 31)
