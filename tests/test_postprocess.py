"""Product profiles and post-processing: masks, footprints, areas, density."""

from __future__ import annotations

from pathlib import Path

import geopandas as gpd
import mosaic_helpers as S
import numpy as np
import pytest
import rasterio
from affine import Affine
from rasterio.crs import CRS

from transforms.core import postprocess
from transforms.core.errors import ConfigError
from transforms.core.mosaic import colormap_for
from transforms.core.mosaic_outputs import write_cog
from transforms.core.products import load_profile, shipped_profiles

NAMES = S.CLASS_NAMES
UTM = CRS.from_epsg(32631).to_wkt()


def classes_cog(tmp_path: Path, classes: np.ndarray, transform: Affine | None = None, crs: str = UTM) -> str:
    path = tmp_path / "classes.tif"
    write_cog(str(path), classes, crs_wkt=crs, transform=transform or S.grid_transform(0, 0),
              colormap=colormap_for(S.CLASSES))
    return str(path)


def with_post(name: str, **post: object):
    return load_profile(name).model_copy(update={"postprocess": post})


def blobs(size: int, seed: int) -> np.ndarray:
    """Buildings (1) of random shapes, many crossing block seams, on background/road."""
    rng = np.random.default_rng(seed)
    out = np.zeros((size, size), np.uint8)
    for _ in range(25):
        r, c = rng.integers(0, size - 12, 2)
        h, w = rng.integers(3, 12, 2)
        out[r : r + h, c : c + w] = 1
        if rng.random() < 0.3:  # L-shapes and touching corners
            out[r + h - 1 : r + h + 4, c + w - 1 : c + w] = 1
    out[size // 2, :] = 2
    out[:3, :3] = 255
    return out


def test_shipped_profiles_have_valid_postprocess_blocks() -> None:
    assert {"urban", "water", "landcover"} <= set(shipped_profiles())
    for name in ("urban", "water", "landcover"):
        profile = load_profile(name)
        cfg = postprocess.parse_config(profile.postprocess, name)
        assert cfg.class_names_used() <= set(NAMES)
    urban = postprocess.parse_config(load_profile("urban").postprocess)
    assert urban.masks[0].classes == ["building", "road"] and urban.footprints and urban.density


def test_bad_postprocess_blocks_are_rejected_with_the_reason(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="footprint"):
        postprocess.parse_config({"footprint": {"classes": ["building"]}}, "p")
    with pytest.raises(ConfigError, match="simplify_m"):
        postprocess.parse_config({"footprints": {"simplify_m": -1}}, "p")
    path = classes_cog(tmp_path, np.zeros((20, 20), np.uint8))
    with pytest.raises(ConfigError, match="'roof'"):
        postprocess.apply(with_post("urban", masks=[{"name": "m", "classes": ["roof"]}]), path, str(tmp_path / "o"), NAMES)


def test_no_postprocess_does_nothing(tmp_path: Path) -> None:
    path = classes_cog(tmp_path, np.zeros((20, 20), np.uint8))
    assert postprocess.apply(load_profile("landsat-rgb"), path, str(tmp_path / "o"), NAMES) == ({}, {})


def test_landcover_class_areas(tmp_path: Path) -> None:
    classes = S.synthetic_classes(90, 70, 3)
    classes[:5] = 255
    path = classes_cog(tmp_path, classes)
    assets, props = postprocess.apply(load_profile("landcover"), path, str(tmp_path / "o"), NAMES)
    assert assets == {}
    areas = props["tessera:class_areas_m2"]
    for value, name in enumerate(NAMES):
        assert areas.get(name, 0) == pytest.approx((classes == value).sum() * 2.25)
    assert props["tessera:valid_area_m2"] == pytest.approx((classes != 255).sum() * 2.25)


@pytest.mark.parametrize("shape", [(1, 1), (3, 5), (64, 64), (7, 9)])
def test_value_counts_equal_bincount(shape: tuple[int, int]) -> None:
    block = np.random.default_rng(shape[0]).integers(0, 256, shape, dtype=np.uint8)
    block[0, 0] = 255
    expected = np.bincount(block.ravel(), minlength=256)
    assert postprocess.value_counts(block) == tuple((v, int(expected[v])) for v in np.flatnonzero(expected))
    assert postprocess.value_counts(block[:, ::2]) == postprocess.value_counts(np.array(block[:, ::2]))


def test_counted_areas_are_used_without_reading_the_cog(tmp_path: Path) -> None:
    classes = S.synthetic_classes(90, 70, 3)
    classes[:5] = 255
    _, scanned = postprocess.apply(load_profile("landcover"), classes_cog(tmp_path, classes), str(tmp_path / "o"), NAMES)
    counts = np.zeros(256, np.int64)
    for value, pixels in postprocess.value_counts(classes):
        counts[value] += pixels
    areas = postprocess.areas_from_counts(counts, UTM, S.grid_transform(0, 0))
    missing = str(tmp_path / "not-a-cog.tif")  # nothing to read: the counts are enough
    assert postprocess.apply(load_profile("landcover"), missing, str(tmp_path / "o"), NAMES, areas) == ({}, scanned)
    # per-row pixel areas (geographic grids) are left to the pass over the COG
    assert postprocess.areas_from_counts(counts, CRS.from_epsg(4326).to_wkt(), Affine(1e-4, 0, 2, 0, -1e-4, 48)) is None


def test_water_mask_and_area(tmp_path: Path) -> None:
    classes = S.synthetic_classes(80, 80, 5)
    classes[70:] = 255
    path = classes_cog(tmp_path, classes)
    out = tmp_path / "o"
    assets, props = postprocess.apply(load_profile("water"), path, str(out), NAMES)
    assert set(assets) == {"water"} and assets["water"]["href"] == "./water.tif"
    assert props["tessera:water_area_m2"] == pytest.approx((classes == 4).sum() * 2.25)
    with rasterio.open(out / "water.tif") as ds:
        mask = ds.read(1)
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG" and ds.colormap(1)[1][:3] == (43, 140, 190)
    np.testing.assert_array_equal(mask, np.where(classes == 255, 255, classes == 4).astype(np.uint8))
    assert sorted(p.name for p in out.iterdir()) == ["water.tif"]  # no temp files left


@pytest.mark.parametrize("block", [16, 40])
def test_footprints_per_block_equal_whole_raster_vectorisation(tmp_path: Path, block: int) -> None:
    classes = blobs(100, 9)
    path = classes_cog(tmp_path, classes)
    spec = {"classes": ["building"], "simplify_m": 0, "min_area_m2": 0}
    _, whole = postprocess.apply(with_post("urban", footprints=spec, block_size=512), path, str(tmp_path / "w"), NAMES)
    _, tiled = postprocess.apply(with_post("urban", footprints=spec, block_size=block), path, str(tmp_path / "t"), NAMES)
    a = gpd.read_parquet(tmp_path / "w" / "footprints.parquet")
    b = gpd.read_parquet(tmp_path / "t" / "footprints.parquet")
    assert whole["tessera:footprint_count"] == tiled["tessera:footprint_count"] == len(a) > 5
    assert sorted(a["area_m2"]) == pytest.approx(sorted(b["area_m2"]))
    assert a.union_all().symmetric_difference(b.union_all()).area == pytest.approx(0, abs=1e-6)
    assert a["area_m2"].sum() == pytest.approx((classes == 1).sum() * 2.25)
    assert a.crs == CRS.from_epsg(32631)


def test_urban_profile_outputs(tmp_path: Path) -> None:
    classes = np.zeros((120, 120), np.uint8)
    classes[10:20, 10:20] = 1  # 225 m^2 building
    classes[50:52, 50:53] = 1  # 13.5 m^2: kept (min 10 m^2)
    classes[80, 80] = 1  # 2.25 m^2: dropped
    classes[100, :] = 2  # road
    path = classes_cog(tmp_path, classes)
    out = tmp_path / "o"
    assets, props = postprocess.apply(load_profile("urban"), path, str(out), NAMES)
    assert set(assets) == {"structures", "footprints", "density"}
    assert all(a["href"] == f"./{Path(a['href']).name}" and (out / Path(a["href"]).name).exists() for a in assets.values())
    assert props["tessera:footprint_count"] == 2
    built = (np.isin(classes, [1, 2])).sum() * 2.25
    assert props["tessera:structures_area_m2"] == pytest.approx(built)
    assert props["tessera:built_up_area_m2"] == pytest.approx(built)
    # one density cell (1 km > the 180 m raster): built-up m^2 per km^2 of valid area
    with rasterio.open(out / "density.tif") as ds:
        assert ds.shape == (1, 1) and ds.nodata == -1
        assert ds.read(1)[0, 0] == pytest.approx(built / (120 * 120 * 2.25) * 1e6, rel=1e-5)
    frame = gpd.read_parquet(out / "footprints.parquet")
    assert sorted(frame["area_m2"]) == pytest.approx([13.5, 225.0])
    assert set(frame["class"]) == {"building"}


def test_areas_on_a_geographic_grid(tmp_path: Path) -> None:
    res = 0.0001  # degrees
    rows = postprocess.row_areas_m2(CRS.from_epsg(4326).to_wkt(), Affine(res, 0, 0, 0, -res, 0.005), 0, 100)
    equator_cell = (res * 6371007.181 * np.pi / 180) ** 2
    assert rows[50] == pytest.approx(equator_cell, rel=1e-4)
    high = postprocess.row_areas_m2(CRS.from_epsg(4326).to_wkt(), Affine(res, 0, 0, 0, -res, 60.0), 0, 1)
    assert high[0] == pytest.approx(equator_cell * 0.5, rel=1e-3)  # cos(60 deg)


@pytest.mark.e2e
@pytest.mark.parametrize("product", ["urban", "water"])
def test_infer_product_routes_to_its_postprocessing(tmp_path: Path, tiny_bundle: str, product: str) -> None:
    """`tessera infer --product P` publishes P's post-processing outputs in the Item."""
    import json

    from helpers import synthetic_scene

    from beam_pipelines.infer import run_infer

    synthetic_scene(tmp_path / "scene.tif", 64, 64, seed=3)
    report = run_infer([str(tmp_path / "scene.tif")], str(tmp_path / "out"), model=tiny_bundle,
                       product=product, tile_size=32)
    assert report.ok, report.failed
    folder = tmp_path / "out" / product / "scene"
    item = json.loads((folder / "scene.json").read_text())
    expected = {"urban": {"structures", "footprints", "density"}, "water": {"water"}}[product]
    assert expected <= set(item["assets"])
    assert all((folder / item["assets"][k]["href"].removeprefix("./")).exists() for k in expected)
    with rasterio.open(folder / "classes.tif") as ds:
        classes = ds.read(1)
    if product == "water":
        assert item["properties"]["tessera:water_area_m2"] == pytest.approx((classes == 4).sum() * 2.25)
    else:
        assert item["properties"]["tessera:structures_area_m2"] == pytest.approx(np.isin(classes, [1, 2]).sum() * 2.25)
        assert gpd.read_parquet(folder / "footprints.parquet").crs == CRS.from_epsg(32631)
