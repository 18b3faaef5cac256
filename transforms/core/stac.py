"""STAC documents for outputs, built as plain dicts so reruns give identical bytes.

No ``created``/``updated`` timestamps: an Item depends only on its source, the model
and the settings, so rerunning a job rewrites the same bytes.
"""

from __future__ import annotations

import json
from typing import Any

import rasterio
from rasterio.warp import transform_bounds, transform_geom

STAC_VERSION = "1.1.0"
EXT_PROJ = "https://stac-extensions.github.io/projection/v2.0.0/schema.json"
EXT_RASTER = "https://stac-extensions.github.io/raster/v1.1.0/schema.json"
EXT_CLASSIFICATION = "https://stac-extensions.github.io/classification/v2.0.0/schema.json"
EXT_MLM = "https://stac-extensions.github.io/mlm/v1.4.0/schema.json"

COG_TYPE = "image/tiff; application=geotiff; profile=cloud-optimized"


def dumps(doc: dict[str, Any]) -> bytes:
    return (json.dumps(doc, indent=2, sort_keys=False, ensure_ascii=False) + "\n").encode()


def footprint(
    width: int, height: int, crs_wkt: str, transform: tuple[float, ...]
) -> tuple[list[float], dict[str, Any], list[float]]:
    """WGS84 bbox and polygon of the raster's extent, and the bbox in its own CRS."""
    affine = rasterio.Affine(*transform[:6])
    xs = [affine.c, affine.c + affine.a * width]
    ys = [affine.f, affine.f + affine.e * height]
    native = [min(xs), min(ys), max(xs), max(ys)]
    crs = rasterio.crs.CRS.from_wkt(crs_wkt)
    west, south, east, north = transform_bounds(crs, "EPSG:4326", *native, densify_pts=21)
    ring = [
        (native[0], native[1]),
        (native[2], native[1]),
        (native[2], native[3]),
        (native[0], native[3]),
        (native[0], native[1]),
    ]
    geom = transform_geom(crs, "EPSG:4326", {"type": "Polygon", "coordinates": [ring]}, precision=7)
    bbox = [round(v, 7) for v in (west, south, east, north)]
    return bbox, _lists(geom), native


def _lists(value: Any) -> Any:
    if isinstance(value, list | tuple):
        return [_lists(v) for v in value]
    if isinstance(value, dict):
        return {k: _lists(v) for k, v in value.items()}
    return value


def proj_fields(width: int, height: int, crs_wkt: str, epsg: int | None, transform: tuple[float, ...],
                native_bbox: list[float]) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "proj:code": f"EPSG:{epsg}" if epsg else None,
        "proj:shape": [height, width],
        "proj:transform": [float(v) for v in transform[:6]],
        "proj:bbox": [float(v) for v in native_bbox],
    }
    if not epsg:
        fields["proj:wkt2"] = crs_wkt
    return fields


def classification_classes(classes: list[dict[str, Any]]) -> list[dict[str, Any]]:
    out = [
        {"value": c["id"], "name": c["name"], "color_hint": c["colour"].lstrip("#").upper()}
        for c in classes
    ]
    out.append({"value": 255, "name": "nodata", "nodata": True})
    return out


def mlm_fields(meta: dict[str, Any], tile: int, halo: int) -> dict[str, Any]:
    """MLM-extension fields describing the model that produced an output."""
    return {
        "mlm:name": meta["name"],
        "mlm:architecture": meta["architecture"],
        "mlm:tasks": ["semantic-segmentation"],
        "mlm:framework": "tensorflow",
        "mlm:input": [
            {
                "name": "image",
                "bands": meta["bands"],
                "input": {"shape": [-1, tile + 2 * halo, tile + 2 * halo, len(meta["bands"])],
                          "dim_order": ["batch", "height", "width", "bands"],
                          "data_type": "float32"},
                "pre_processing_function": None,
            }
        ],
        "mlm:output": [
            {
                "name": "probabilities",
                "tasks": ["semantic-segmentation"],
                "result": {"shape": [-1, tile + 2 * halo, tile + 2 * halo, len(meta["classes"])],
                           "dim_order": ["batch", "height", "width", "classes"],
                           "data_type": "float32"},
                "classification:classes": classification_classes(meta["classes"]),
                "post_processing_function": None,
            }
        ],
        "tessera:model_version": meta["version"],
        "tessera:receptive_field": meta["receptive_field"],
        "tessera:alignment": meta["alignment"],
        "tessera:tile_size": tile,
        "tessera:halo": halo,
    }


def item(
    *,
    item_id: str,
    collection: str,
    bbox: list[float],
    geometry: dict[str, Any],
    datetime: str,
    properties: dict[str, Any],
    assets: dict[str, dict[str, Any]],
    source_url: str,
) -> dict[str, Any]:
    props = {"datetime": datetime, **properties}
    return {
        "type": "Feature",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT_PROJ, EXT_RASTER, EXT_CLASSIFICATION, EXT_MLM],
        "id": item_id,
        "collection": collection,
        "bbox": bbox,
        "geometry": geometry,
        "properties": props,
        "links": [
            {"rel": "root", "href": "../../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../collection.json", "type": "application/json"},
            {"rel": "collection", "href": "../collection.json", "type": "application/json"},
            {"rel": "derived_from", "href": source_url, "type": "image/tiff"},
        ],
        "assets": assets,
    }


def collection(collection_id: str, title: str, description: str, items: list[dict[str, Any]],
               summaries: dict[str, Any]) -> dict[str, Any]:
    """A Collection whose extent covers ``items`` (each with bbox and datetime)."""
    if items:
        bbox = [
            min(i["bbox"][0] for i in items),
            min(i["bbox"][1] for i in items),
            max(i["bbox"][2] for i in items),
            max(i["bbox"][3] for i in items),
        ]
        times = sorted(i["properties"]["datetime"] for i in items)
        interval = [times[0], times[-1]]
    else:
        bbox, interval = [-180.0, -90.0, 180.0, 90.0], [None, None]
    return {
        "type": "Collection",
        "stac_version": STAC_VERSION,
        "stac_extensions": [EXT_CLASSIFICATION],
        "id": collection_id,
        "title": title,
        "description": description or title or collection_id,
        "license": "other",
        "extent": {"spatial": {"bbox": [bbox]}, "temporal": {"interval": [interval]}},
        "summaries": summaries,
        "links": [
            {"rel": "root", "href": "../catalog.json", "type": "application/json"},
            {"rel": "parent", "href": "../catalog.json", "type": "application/json"},
        ]
        + [
            {"rel": "item", "href": f"./{i['id']}/{i['id']}.json", "type": "application/geo+json"}
            for i in sorted(items, key=lambda d: d["id"])
        ],
    }


def catalog(collection_ids: list[str]) -> dict[str, Any]:
    return {
        "type": "Catalog",
        "stac_version": STAC_VERSION,
        "id": "tessera",
        "title": "tessera outputs",
        "description": "Maps produced by tessera: one collection per product.",
        "links": [{"rel": "root", "href": "./catalog.json", "type": "application/json"}]
        + [
            {"rel": "child", "href": f"./{cid}/collection.json", "type": "application/json"}
            for cid in sorted(collection_ids)
        ],
    }


def validate_core(doc: dict[str, Any]) -> None:
    """Validate an Item, Collection or Catalog against the STAC core 1.1 JSON schemas
    bundled with pystac (offline: extension schemas would need the network)."""
    from jsonschema import Draft7Validator
    from pystac.validation.local_validator import get_local_schema_cache
    from referencing import Registry, Resource

    cache = get_local_schema_cache()
    registry = Registry().with_resources([(k, Resource.from_contents(v)) for k, v in cache.items()])
    kind = {"Feature": "item", "Collection": "collection", "Catalog": "catalog"}[doc["type"]]
    uri = f"https://schemas.stacspec.org/v{STAC_VERSION}/{kind}-spec/json-schema/{kind}.json"
    Draft7Validator(cache[uri], registry=registry).validate(doc)
