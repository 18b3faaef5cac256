"""Mosaic outputs: per tile a COG + post-processing + STAC Item + manifest (last), then
the Collection, its link from ``catalog.json`` and a GDAL VRT of every tile.

A tile's manifest is written last: a crash half-way leaves the old manifest and the
next run rebuilds the tile. Collection, VRT and catalog are written only if changed.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds, transform_geom

from transforms.core.mosaic import (
    NODATA,
    ClassEntry,
    Contribution,
    MosaicTileKey,
    TargetGrid,
    colormap_for,
)
from transforms.core.mosaic_io import classification_classes, tile_dir, write_if_changed
from transforms.core.outputs import put_file, read_json, write_bytes
from transforms.core.rasterio_io import GDAL_ENV
from transforms.core.stac import dumps

COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
STAC_VERSION = "1.1.0"
PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"


# --- writing one tile -------------------------------------------------------------------


def write_cog(path: str, array: np.ndarray, *, crs_wkt: str, transform: Any,
              colormap: dict[int, tuple[int, int, int, int]] | None = None, nodata: float | None = NODATA,
              blocksize: int = 256) -> None:
    """A single-band COG at a local ``path`` (deflate, nearest overviews, colour map)."""
    height, width = array.shape
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": array.dtype.name,
        "crs": CRS.from_wkt(crs_wkt), "transform": transform, "nodata": nodata,
    }
    with rasterio.Env(**GDAL_ENV), MemoryFile() as mem:
        with mem.open(**profile) as ds:
            ds.write(array, 1)
            if colormap:
                ds.write_colormap(1, colormap)
        with mem.open() as src:
            rasterio.shutil.copy(src, path, driver="COG", compress="DEFLATE", blocksize=blocksize,
                                 overview_resampling="NEAREST")


def data_bounds(grid: TargetGrid, key: MosaicTileKey, classes: np.ndarray | None = None) -> tuple[float, float, float, float]:
    """The tile's extent shrunk to its valid pixels (the whole tile if it has none)."""
    if classes is not None:
        valid = classes != NODATA
        rows, cols = np.flatnonzero(valid.any(axis=1)), np.flatnonzero(valid.any(axis=0))
        if rows.size:
            t, res = grid.tile_transform(key), grid.resolution
            return (t.c + cols[0] * res, t.f - (rows[-1] + 1) * res, t.c + (cols[-1] + 1) * res, t.f - rows[0] * res)
    return grid.tile_bounds(key)


def wgs84_footprint(grid: TargetGrid, key: MosaicTileKey, classes: np.ndarray | None = None) -> tuple[dict[str, Any], list[float]]:
    """GeoJSON polygon and WGS84 bbox of the tile's data (STAC Items describe data, not tiles)."""
    left, bottom, right, top = (float(v) for v in data_bounds(grid, key, classes))
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    geom = transform_geom(grid.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)
    bbox = list(transform_bounds(grid.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21))
    return geom, [round(v, 7) for v in bbox]


@dataclass(frozen=True)
class TileRecord:
    """What the Collection step needs to know about one tile (written or not)."""

    key: MosaicTileKey
    written: bool
    bbox: tuple[float, float, float, float]
    start: str
    end: str
    files_written: int = 0


def write_tile(
    key: MosaicTileKey,
    classes: np.ndarray,
    *,
    grid: TargetGrid,
    collection_url: str,
    product: str,
    class_table: Sequence[ClassEntry],
    manifest: dict[str, Any],
    contributions: Sequence[Contribution],
    contributors: Sequence[str],
    profile: Any = None,
) -> TileRecord:
    """COG, post-processing outputs, STAC Item, then the manifest (last)."""
    from transforms.core.postprocess import apply as postprocess_apply
    from transforms.core.postprocess import class_areas_m2

    folder = tile_dir(collection_url, key)
    transform = grid.tile_transform(key)
    geom, bbox = wgs84_footprint(grid, key, classes)
    scenes = {c.scene.item_id: c.scene for c in contributions}
    times = sorted(scenes[i].datetime for i in contributors) or sorted(s.datetime for s in scenes.values())
    names = {c.value: c.name for c in class_table}
    files = 0
    assets: dict[str, Any] = {
        "classes": {
            "href": "./classes.tif", "type": COG_MEDIA_TYPE, "roles": ["data"], "title": f"{product} classes",
            "nodata": NODATA, "classification:classes": classification_classes(class_table),
        }
    }
    props: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="tessera-mosaic-") as tmp:
        cog = os.path.join(tmp, "classes.tif")
        write_cog(cog, classes, crs_wkt=grid.crs_wkt, transform=transform, colormap=colormap_for(class_table))
        put_file(cog, f"{folder}/classes.tif")
        files += 1
        if profile is not None and profile.postprocess:
            out_dir = os.path.join(tmp, "post")
            os.makedirs(out_dir)
            extra_assets, extra_props = postprocess_apply(profile, cog, out_dir, [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)])
            for asset_key, asset in extra_assets.items():
                name = asset["href"].removeprefix("./")
                put_file(os.path.join(out_dir, name), f"{folder}/{name}")
                files += 1
                assets[asset_key] = asset
            props.update(extra_props)
    areas = class_areas_m2(classes, grid.crs_wkt, transform)
    props.setdefault("tessera:class_areas_m2", {names.get(v, str(v)): a for v, a in areas.items()})
    epsg = grid.crs.to_epsg()
    item = {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [PROJ_EXT, CLASSIFICATION_EXT],
        "id": f"{product}-mosaic-{key}",
        "geometry": geom,
        "bbox": bbox,
        "properties": {
            "datetime": times[-1],
            "start_datetime": times[0],
            "end_datetime": times[-1],
            "tessera:mosaic": True,
            "tessera:product": product,
            "tessera:tile": str(key),
            "tessera:policy": manifest["policy"],
            "tessera:contributors": list(contributors),
            "tessera:manifest": manifest["hash"],
            **({"proj:code": f"EPSG:{epsg}"} if epsg else {"proj:wkt2": grid.crs_wkt}),
            "proj:shape": [grid.tile_size, grid.tile_size],
            "proj:transform": list(transform)[:6],
            **props,
        },
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            *[{"rel": "derived_from", "href": scenes[i].item_url, "type": "application/geo+json"} for i in contributors],
        ],
        "assets": assets,
        "collection": f"{product}-mosaic",
    }
    write_bytes(f"{folder}/{key}.json", dumps(item))
    write_bytes(f"{folder}/manifest.json", dumps(manifest))
    return TileRecord(key, True, tuple(bbox), times[0], times[-1], files + 2)  # type: ignore[arg-type]


def record_for_current_tile(collection_url: str, key: MosaicTileKey, grid: TargetGrid) -> TileRecord:
    item = read_json(f"{tile_dir(collection_url, key)}/{key}.json") or {}
    props = item.get("properties", {})
    bbox = item.get("bbox") or wgs84_footprint(grid, key)[1]
    return TileRecord(key, False, tuple(bbox), props.get("start_datetime", ""), props.get("end_datetime", ""))


# --- the Collection, the catalog link and the VRT -----------------------------------------


def write_collection(
    output_url: str,
    product: str,
    records: Sequence[TileRecord],
    *,
    grid: TargetGrid,
    policy: str,
    class_table: Sequence[ClassEntry],
) -> dict[str, bool]:
    """Collection JSON, VRT and the root catalog link; each written only if changed."""
    output_url = output_url.rstrip("/")
    coll_id = f"{product}-mosaic"
    coll_url = f"{output_url}/{coll_id}"
    records = sorted(records, key=lambda r: (-r.key.y, r.key.x))
    bboxes = np.array([r.bbox for r in records], dtype=float)
    bbox = [float(bboxes[:, 0].min()), float(bboxes[:, 1].min()), float(bboxes[:, 2].max()), float(bboxes[:, 3].max())]
    starts = sorted(r.start for r in records if r.start)
    ends = sorted(r.end for r in records if r.end)
    collection = {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [CLASSIFICATION_EXT],
        "id": coll_id,
        "title": f"{product} mosaic",
        "description": f"Mosaic of the {product} per-scene outputs on a fixed grid, overlaps resolved by '{policy}'.",
        "license": "proprietary",
        "extent": {
            "spatial": {"bbox": [bbox]},
            "temporal": {"interval": [[starts[0] if starts else None, ends[-1] if ends else None]]},
        },
        "summaries": {"classification:classes": classification_classes(class_table)},
        "item_assets": {
            "classes": {"type": COG_MEDIA_TYPE, "roles": ["data"], "classification:classes": classification_classes(class_table)}
        },
        "assets": {"vrt": {"href": "./mosaic.vrt", "type": "application/xml", "roles": ["data"], "title": "GDAL VRT of every tile"}},
        # "tessera:kind" tells `tessera infer`'s catalog update to link, never rebuild, this one
        "tessera:kind": "mosaic",
        "tessera:mosaic": {"policy": policy, "grid": grid.describe(), "product": product},
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
            *[{"rel": "item", "href": f"./{r.key}/{r.key}.json", "type": "application/geo+json"} for r in records],
        ],
    }
    return {
        "collection": write_if_changed(f"{coll_url}/collection.json", dumps(collection)),
        "vrt": write_if_changed(f"{coll_url}/mosaic.vrt", mosaic_vrt(grid, [r.key for r in records], class_table).encode()),
        "catalog": link_catalog(output_url, coll_id),
    }


def link_catalog(output_url: str, collection_id: str) -> bool:
    """Add the mosaic Collection as a child of ``{output}/catalog.json`` (made if absent)."""
    url = f"{output_url}/catalog.json"
    catalog = read_json(url) or {
        "type": "Catalog", "stac_version": STAC_VERSION, "id": "tessera",
        "description": "tessera outputs", "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}],
    }
    href = f"./{collection_id}/collection.json"
    links = catalog.setdefault("links", [])
    if any(link.get("rel") == "child" and link.get("href") == href for link in links):
        return False
    links.append({"rel": "child", "href": href, "type": "application/json", "title": f"{collection_id}"})
    write_bytes(url, dumps(catalog))
    return True


def mosaic_vrt(grid: TargetGrid, keys: Sequence[MosaicTileKey], class_table: Sequence[ClassEntry]) -> str:
    """A GDAL VRT placing every tile COG (relative paths) on one raster."""
    xs, ys = [k.x for k in keys], [k.y for k in keys]
    x0, y1 = min(xs), max(ys)
    t = grid.tile_transform(MosaicTileKey(x0, y1))
    size = grid.tile_size
    width, height = (max(xs) - x0 + 1) * size, (y1 - min(ys) + 1) * size
    colours = colormap_for(class_table)
    entries = "\n".join(
        f'      <Entry c1="{r}" c2="{g}" c3="{b}" c4="{a}"/>'
        for r, g, b, a in (colours.get(v, (0, 0, 0, 0)) for v in range(256))
    )
    sources = "\n".join(
        f"""    <ComplexSource>
      <SourceFilename relativeToVRT="1">{k}/classes.tif</SourceFilename>
      <SourceBand>1</SourceBand>
      <SourceProperties RasterXSize="{size}" RasterYSize="{size}" DataType="Byte" BlockXSize="256" BlockYSize="256"/>
      <SrcRect xOff="0" yOff="0" xSize="{size}" ySize="{size}"/>
      <DstRect xOff="{(k.x - x0) * size}" yOff="{(y1 - k.y) * size}" xSize="{size}" ySize="{size}"/>
      <NODATA>{NODATA}</NODATA>
    </ComplexSource>"""
        for k in sorted(keys, key=lambda k: (-k.y, k.x))
    )
    return f"""<VRTDataset rasterXSize="{width}" rasterYSize="{height}">
  <SRS>{escape(grid.crs_wkt)}</SRS>
  <GeoTransform>{t.c!r}, {t.a!r}, 0.0, {t.f!r}, 0.0, {t.e!r}</GeoTransform>
  <VRTRasterBand dataType="Byte" band="1">
    <NoDataValue>{NODATA}</NoDataValue>
    <ColorInterp>Palette</ColorInterp>
    <ColorTable>
{entries}
    </ColorTable>
{sources}
  </VRTRasterBand>
</VRTDataset>
"""
