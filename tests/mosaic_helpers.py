"""Per-scene outputs in the docs/contracts.md layout, written directly (COGs + STAC
Items with pystac), for the mosaic, post-processing and products-service tests.
(Plain module: tests/conftest.py puts tests/ on sys.path.)"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pystac
import rasterio
import rasterio.warp
from affine import Affine

from transforms.core.mosaic import ClassEntry, colormap_for
from transforms.core.mosaic_io import classification_classes
from transforms.core.mosaic_outputs import write_cog

CLASSES = (
    ClassEntry(0, "background", "#d9d0c1"),
    ClassEntry(1, "building", "#d7301f"),
    ClassEntry(2, "road", "#525252"),
    ClassEntry(3, "vegetation", "#31a354"),
    ClassEntry(4, "water", "#2b8cbe"),
)
CLASS_NAMES = [c.name for c in CLASSES]
CRS_UTM31 = "EPSG:32631"
RES = 1.5
# a corner of the target grid well inside UTM 31N (near Paris), on a whole multiple of
# 512 * 1.5 m so tile maths in tests stays readable
ORIGIN_X, ORIGIN_Y = 449280.0, 5412864.0


@dataclass
class Scene:
    scene_id: str
    classes: np.ndarray  # uint8, 255 = no-data
    transform: Affine
    datetime: str
    confidence: np.ndarray | None = None
    crs: str = CRS_UTM31


def synthetic_classes(height: int, width: int, seed: int = 0, *, blob: int = 12) -> np.ndarray:
    """Blocky class map (buildings, roads, vegetation, water) with some structure."""
    rng = np.random.default_rng(seed)
    coarse = rng.integers(0, 5, size=(-(-height // blob), -(-width // blob)), dtype=np.uint8)
    out = np.kron(coarse, np.ones((blob, blob), dtype=np.uint8))[:height, :width]
    return np.ascontiguousarray(out)


def write_scene_outputs(root: Path | str, scenes: list[Scene], product: str = "landcover") -> Path:
    """Write (or extend) a `tessera infer`-style output tree; existing rasters are kept
    untouched so their identity (mtime) does not change between calls."""
    root = Path(root)
    catalog = pystac.Catalog("tessera", "tessera outputs")
    collection = pystac.Collection(
        product, f"{product} per-scene outputs",
        pystac.Extent(pystac.SpatialExtent([[-180, -90, 180, 90]]), pystac.TemporalExtent([[None, None]])),
    )
    catalog.add_child(collection)
    known = {s.scene_id: s for s in scenes}
    for scene in known.values():
        folder = root / product / scene.scene_id
        folder.mkdir(parents=True, exist_ok=True)
        classes_path = folder / "classes.tif"
        if not classes_path.exists():
            write_cog(str(classes_path), scene.classes, crs_wkt=rasterio.CRS.from_user_input(scene.crs).to_wkt(),
                      transform=scene.transform, colormap=colormap_for(CLASSES), blocksize=128)
        if scene.confidence is not None and not (folder / "confidence.tif").exists():
            write_cog(str(folder / "confidence.tif"), scene.confidence,
                      crs_wkt=rasterio.CRS.from_user_input(scene.crs).to_wkt(), transform=scene.transform, blocksize=128)
        h, w = scene.classes.shape
        t = scene.transform
        left, top, right, bottom = t.c, t.f, t.c + t.a * w, t.f + t.e * h
        bbox = list(rasterio.warp.transform_bounds(scene.crs, "EPSG:4326", left, bottom, right, top))
        geom = {"type": "Polygon", "coordinates": [[[bbox[0], bbox[1]], [bbox[2], bbox[1]], [bbox[2], bbox[3]],
                                                    [bbox[0], bbox[3]], [bbox[0], bbox[1]]]]}
        when = pystac.utils.str_to_datetime(scene.datetime)
        item = pystac.Item(scene.scene_id, geom, bbox, when, properties={
            "tessera:product": product,
            "tessera:source": {"url": f"file:///landing/{scene.scene_id}.tif", "size": 1, "mtime": scene.datetime},
            "proj:code": scene.crs,
            "proj:shape": [h, w],
            "proj:transform": list(t)[:6],
        })
        item.add_asset("classes", pystac.Asset("./classes.tif", media_type=pystac.MediaType.COG, roles=["data"],
                                               extra_fields={"classification:classes": classification_classes(CLASSES),
                                                             "nodata": 255}))
        if (folder / "confidence.tif").exists():
            item.add_asset("confidence", pystac.Asset("./confidence.tif", media_type=pystac.MediaType.COG, roles=["data"]))
        item.add_link(pystac.Link("derived_from", f"file:///landing/{scene.scene_id}.tif"))
        collection.add_item(item)
    # keep Items written by earlier calls
    for old in sorted((root / product).glob("*/*.json")) if (root / product).exists() else []:
        if old.stem not in known and old.parent.name == old.stem:
            collection.add_item(pystac.Item.from_file(str(old)))
    catalog.normalize_hrefs(str(root))
    for item in collection.get_items():
        for asset in item.assets.values():  # keep hrefs relative to the Item
            asset.href = "./" + os.path.basename(asset.href)
    catalog.save(pystac.CatalogType.SELF_CONTAINED)
    return root / "catalog.json"


def grid_transform(col: int, row: int) -> Affine:
    """Transform of a scene whose pixel (0, 0) is pixel (col, row) of the test grid."""
    return Affine(RES, 0, ORIGIN_X + col * RES, 0, -RES, ORIGIN_Y - row * RES)


def validate_core(doc: dict) -> None:
    """Validate against the STAC core schemas pystac bundles (extension schemas would
    be fetched from the web, which tests must not need)."""
    import json

    pystac.validation.validate_dict({**json.loads(json.dumps(doc)), "stac_extensions": []})
