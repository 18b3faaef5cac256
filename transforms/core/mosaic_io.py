"""Mosaic inputs: find per-scene outputs through STAC; tile manifests (what a mosaic
tile is made of, hashed).

Writes go through ``transforms.core.outputs`` (atomic on files and object stores);
``write_if_changed`` skips writes that would not change the bytes, so a rerun with
nothing new rewrites nothing. The outputs themselves are written by
``mosaic_outputs``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import posixpath
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import fsspec
import rasterio
from rasterio.crs import CRS

from transforms.core.errors import ConfigError
from transforms.core.mosaic import (
    NODATA,
    AssetIdentity,
    ClassEntry,
    Contribution,
    MosaicTileKey,
    SceneOutput,
    TargetGrid,
)
from transforms.core.outputs import read_json, write_bytes
from transforms.core.rasterio_io import GDAL_ENV, open_dataset

log = logging.getLogger(__name__)

MANIFEST_FORMAT = 1


# --- URLs and writes ----------------------------------------------------------


def join_url(base: str, href: str) -> str:
    """Resolve ``href`` against the document at ``base`` (local path or any URL)."""
    if "://" in href or href.startswith("/"):
        return href
    scheme, sep, path = base.rpartition("://") if "://" in base else ("", "", base)
    joined = posixpath.normpath(posixpath.join(posixpath.dirname(path), href))
    return f"{scheme}{sep}{joined}" if sep else joined


def write_if_changed(url: str, data: bytes) -> bool:
    """Write unless the object already holds exactly these bytes; True if written."""
    try:
        with fsspec.open(url, "rb") as f:
            if f.read() == data:
                return False
    except FileNotFoundError:
        pass
    write_bytes(url, data)
    return True


def asset_identity(url: str) -> AssetIdentity:
    fs, path = fsspec.core.url_to_fs(url)
    try:
        info = fs.info(path)
    except FileNotFoundError as exc:
        raise ConfigError(f"asset {url} listed in a STAC Item does not exist; rerun `tessera infer`") from exc
    version = info.get("generation") or info.get("mtime") or info.get("updated") or info.get("LastModified") or ""
    return AssetIdentity(url, int(info.get("size") or 0), str(version))


# --- discovering per-scene outputs ---------------------------------------------------


def catalog_root(url: str) -> str:
    """The root document of a catalog given as a folder or a ``.json`` URL."""
    url = url.rstrip("/")
    return url if url.endswith(".json") else f"{url}/catalog.json"


def walk_stac(
    catalog_url: str,
    rels: tuple[str, ...] = ("child", "item"),
    descend: Callable[[dict[str, Any]], bool] | None = None,
) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """``(url, document)`` for every STAC document reachable from the root over ``rels``
    links, depth first in link order, each once; ``(url, None)`` for a missing one (the
    caller decides whether that is an error). ``descend(doc)`` False: yield the document
    but do not follow its links."""
    stack, seen = [catalog_root(catalog_url)], set()
    while stack:
        url = stack.pop()
        if url in seen:
            continue
        seen.add(url)
        doc = read_json(url)
        yield url, doc
        if doc is None or (descend is not None and not descend(doc)):
            continue
        for link in reversed(doc.get("links", [])):
            if link.get("rel") in rels:
                stack.append(join_url(url, link["href"]))


def iter_items(catalog_url: str) -> Iterable[tuple[str, dict[str, Any]]]:
    """(url, Item dict) for every Item under a Catalog/Collection, depth first.
    Mosaic collections (ours) are skipped so a mosaic never feeds on itself."""
    root = catalog_root(catalog_url)

    def descend(doc: dict[str, Any]) -> bool:
        return doc.get("type") != "Feature" and not (
            doc.get("tessera:mosaic") or doc.get("tessera:kind") == "mosaic"
        )

    for url, doc in walk_stac(root, descend=descend):
        if doc is None:
            if url == root:
                raise ConfigError(f"no STAC catalog at {root}; pass the --output of `tessera infer`")
            log.warning("STAC link %s is missing; skipped", url)
        elif doc.get("type") == "Feature":
            yield url, doc


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
        if c.get("nodata") or int(c["value"]) == NODATA:
            continue
        colour = c.get("color_hint") or c.get("colour") or "808080"
        entries.append(ClassEntry(int(c["value"]), str(c.get("name", c["value"])), "#" + colour.lstrip("#")))
    return tuple(entries)


def classification_classes(classes: Sequence[ClassEntry]) -> list[dict[str, Any]]:
    return [{"value": c.value, "name": c.name, "color_hint": c.colour.lstrip("#").upper()} for c in classes]


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
