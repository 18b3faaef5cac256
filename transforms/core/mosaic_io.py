"""Mosaic inputs and outputs: find per-scene outputs through STAC, write mosaic tiles
(COG + STAC Item + manifest), the Collection, the catalog link and a GDAL VRT.

Every write is atomic (a temp name then a rename on files; one object PUT on object
stores) and every small JSON/VRT write is skipped when the bytes would not change, so a
rerun with nothing new rewrites nothing. A tile's manifest is written last: a crash
half-way leaves the old manifest, and the next run rebuilds the tile.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import posixpath
import tempfile
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from xml.sax.saxutils import escape

import fsspec
import numpy as np
import rasterio
import rasterio.shutil
from rasterio.crs import CRS
from rasterio.io import MemoryFile
from rasterio.warp import transform_bounds, transform_geom

from transforms.core.errors import ConfigError
from transforms.core.mosaic import (
    NODATA,
    AssetIdentity,
    ClassEntry,
    Contribution,
    MosaicTileKey,
    SceneOutput,
    TargetGrid,
    colormap_for,
)
from transforms.core.rasterio_io import GDAL_ENV, is_local, local_path, open_dataset

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1
COG_MEDIA_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"
STAC_VERSION = "1.1.0"
PROJ_EXT = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
CLASSIFICATION_EXT = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"


# --- URLs and atomic writes ----------------------------------------------------------


def join_url(base: str, href: str) -> str:
    """Resolve ``href`` against the document at ``base`` (local path or any URL)."""
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, path = base.rpartition("://") if "://" in base else ("", "", base)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), href))
    return f"{scheme}{sep}{joined}" if sep else joined


def read_json(url: str) -> dict[str, Any] | None:
    try:
        with fsspec.open(url, "rt") as f:
            data = json.load(f)
    except FileNotFoundError:
        return None
    return data if isinstance(data, dict) else None


def atomic_write_bytes(url: str, data: bytes) -> None:
    if is_local(url):
        path = local_path(url)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return
    with fsspec.open(url, "wb") as f:  # one object PUT: readers see old or new, never half
        f.write(data)


def atomic_put_file(local: str, url: str) -> None:
    if is_local(url):
        path = local_path(url)
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(local, "rb") as src, open(tmp, "wb") as dst:
            while chunk := src.read(1 << 20):
                dst.write(chunk)
        os.replace(tmp, path)
        return
    fs, path = fsspec.core.url_to_fs(url)
    fs.put_file(local, path)


def write_if_changed(url: str, data: bytes) -> bool:
    """Write unless the object already holds exactly these bytes; True if written."""
    try:
        with fsspec.open(url, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    atomic_write_bytes(url, data)
    return True


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False) + "\n").encode()


def asset_identity(url: str) -> AssetIdentity:
    fs, path = fsspec.core.url_to_fs(url)
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"asset {url} listed in a STAC Item does not exist; rerun `tessera infer`") from exc
    version = info.get("generation") or info.get("mtime") or info.get("updated") or info.get("LastModified") or ""
    return AssetIdentity(url, int(info.get("size") or 0), str(version))


# --- discovering per-scene outputs ---------------------------------------------------


def _catalog_root(url: str) -> str:
    url = url.rstrip("/")
    return url if url.endswith(".json") else f"{url}/catalog.json"


def iter_items(catalog_url: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(url, Item dict) for every Item under a Catalog/Collection, depth first.
    Mosaic collections (ours) are skipped so a mosaic never feeds on itself."""
    root = _catalog_root(catalog_url)
    seen: set[str] = set()
    stack = [root]
    while stack:
        url = stack.pop()
        if url in seen:
            continue
        seen.add(url)
        doc = read_json(url)
        if doc is None:
            if url == root:
                raise ConfigError(f"no STAC catalog at {root}; pass the --output of `tessera infer`")
            log.warning("STAC link %s is missing; skipped", url)
            continue
        if doc.get("type") == "Feature":
            yield url, doc
            continue
        if doc.get("tessera:mosaic"):
            continue
        for link in reversed(doc.get("links", [])):
            if link.get("rel") in ("child", "item"):
                stack.append(join_url(url, link["href"]))


def class_entries(item: dict[str, Any]) -> tuple[ClassEntry, ...]:
    """Class names and colours: the classes asset's ``classification:classes``, else the
    MLM output's; empty when neither is there (the COG's colour map then decides)."""
    asset = item.get("assets", {}).get("classes", {})
    raw = asset.get("classification:classes")
    if not raw:
        for output in item.get("properties", {}).get("mlm:output", []) or []:
            raw = output.get("classification:classes")
            if raw:
                break
    entries = []
    for c in raw or []:
        colour = c.get("color_hint") or c.get("colour") or "808080"
        entries.append(ClassEntry(int(c["value"]), str(c.get("name", c["value"])), "#" + colour.lstrip("#")))
    return tuple(entries)


def _item_grid(url: str, item: dict[str, Any], classes_url: str) -> tuple[str, tuple[float, ...], int, int]:
    props = item.get("properties", {})
    code = props.get("proj:code") or (f"EPSG:{props['proj:epsg']}" if props.get("proj:epsg") else None)
    wkt = props.get("proj:wkt2")
    transform, shape = props.get("proj:transform"), props.get("proj:shape")
    if (code or wkt) and transform and shape:
        crs = CRS.from_user_input(code) if code else CRS.from_wkt(wkt)
        return crs.to_wkt(), tuple(float(v) for v in transform[:6]), int(shape[1]), int(shape[0])
    with rasterio.Env(**GDAL_ENV), open_dataset(classes_url) as ds:
        if ds.crs is None:
            raise ConfigError(f"{classes_url} (Item {url}) has no CRS")
        return ds.crs.to_wkt(), tuple(ds.transform)[:6], ds.width, ds.height


def scene_output_from_item(url: str, item: dict[str, Any]) -> SceneOutput | None:
    """A SceneOutput for a per-scene Item, or None if it is not one (no classes asset)."""
    props = item.get("properties", {})
    assets = item.get("assets", {})
    if props.get("tessera:mosaic") or "classes" not in assets:
        return None
    classes_url = join_url(url, assets["classes"]["href"])
    confidence_url = join_url(url, assets["confidence"]["href"]) if "confidence" in assets else None
    crs_wkt, transform, width, height = _item_grid(url, item, classes_url)
    when = props.get("datetime") or props.get("end_datetime") or props.get("start_datetime")
    if not when:
        raise ConfigError(f"Item {url} has no datetime; the 'latest' policy needs one")
    product = props.get("tessera:product") or item.get("collection") or "classes"
    return SceneOutput(
        item_id=item["id"],
        item_url=url,
        product=str(product),
        datetime=str(when),
        classes_url=classes_url,
        crs_wkt=crs_wkt,
        transform=transform,  # type: ignore[arg-type]
        width=width,
        height=height,
        classes_identity=asset_identity(classes_url),
        confidence_url=confidence_url,
        confidence_identity=asset_identity(confidence_url) if confidence_url else None,
        classes=class_entries(item) or _classes_from_colormap(classes_url),
    )


def _classes_from_colormap(classes_url: str) -> tuple[ClassEntry, ...]:
    """Fallback when an Item names no classes: the COG's colour table, unnamed."""
    try:
        with rasterio.Env(**GDAL_ENV), open_dataset(classes_url) as ds:
            table = ds.colormap(1)
    except ValueError:  # no colour table
        return ()
    return tuple(
        ClassEntry(v, f"class {v}", "#{:02x}{:02x}{:02x}".format(*rgba[:3]))
        for v, rgba in sorted(table.items())
        if v != NODATA and rgba[3] > 0
    )


def discover_scene_outputs(catalog_url: str) -> list[SceneOutput]:
    scenes = [s for url, item in iter_items(catalog_url) if (s := scene_output_from_item(url, item))]
    return sorted(scenes, key=lambda s: (s.product, s.item_id))


# --- manifests ------------------------------------------------------------------------


def tile_manifest(
    key: MosaicTileKey,
    contributions: Sequence[Contribution],
    grid: TargetGrid,
    policy: str,
    priority: Sequence[str] = (),
    postprocess: dict[str, Any] | None = None,
    needs_confidence: bool = False,
) -> dict[str, Any]:
    """What the tile is made of; its hash decides whether the tile must be rebuilt."""
    scenes = sorted({c.scene for c in contributions}, key=lambda s: s.item_id)
    ids = {s.item_id for s in scenes}
    inputs = [
        {
            "item": s.item_id,
            "datetime": s.datetime,
            "classes": s.classes_identity.as_list(),
            **({"confidence": s.confidence_identity.as_list()} if needs_confidence and s.confidence_identity else {}),
        }
        for s in scenes
    ]
    body = {
        "format": MANIFEST_FORMAT,
        "tile": str(key),
        "grid": grid.describe(),
        "policy": policy,
        "priority": [p for p in priority if p in ids] if policy == "priority" else [],
        "postprocess": postprocess or {},
        "inputs": inputs,
    }
    digest = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    return {"hash": digest, **body}


def tile_dir(collection_url: str, key: MosaicTileKey) -> str:
    return f"{collection_url.rstrip('/')}/{key}"


def tile_is_current(collection_url: str, key: MosaicTileKey, manifest: dict[str, Any]) -> bool:
    """True when the tile on storage was built from exactly these inputs."""
    folder = tile_dir(collection_url, key)
    old = read_json(f"{folder}/manifest.json")
    if not old or old.get("hash") != manifest["hash"]:
        return False
    fs, path = fsspec.core.url_to_fs(f"{folder}/classes.tif")
    return bool(fs.exists(path))


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


def wgs84_footprint(grid: TargetGrid, key: MosaicTileKey) -> tuple[dict[str, Any], list[float]]:
    left, bottom, right, top = grid.tile_bounds(key)
    ring = [[left, bottom], [right, bottom], [right, top], [left, top], [left, bottom]]
    geom = transform_geom(grid.crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)
    bbox = list(transform_bounds(grid.crs, "EPSG:4326", left, bottom, right, top, densify_pts=21))
    return geom, [round(v, 7) for v in bbox]


def classification_classes(classes: Sequence[ClassEntry]) -> list[dict[str, Any]]:
    return [{"value": c.value, "name": c.name, "color_hint": c.colour.lstrip("#").upper()} for c in classes]


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
    geom, bbox = wgs84_footprint(grid, key)
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
        atomic_put_file(cog, f"{folder}/classes.tif")
        files += 1
        if profile is not None and profile.postprocess:
            out_dir = os.path.join(tmp, "post")
            os.makedirs(out_dir)
            extra_assets, extra_props = postprocess_apply(profile, cog, out_dir, [names.get(i, str(i)) for i in range(max(names, default=-1) + 1)])
            for asset_key, asset in extra_assets.items():
                name = asset["href"].removeprefix("./")
                atomic_put_file(os.path.join(out_dir, name), f"{folder}/{name}")
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
    atomic_write_bytes(f"{folder}/{key}.json", dumps(item))
    atomic_write_bytes(f"{folder}/manifest.json", dumps(manifest))
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
    atomic_write_bytes(url, dumps(catalog))
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
