"""What the products service knows about the catalogue: Collections, their Items'
footprints and classes assets, class tables and class-area statistics.

Pure Python over ``transforms.core`` (no FastAPI, no Beam). The index is rebuilt from
STAC JSON when older than ``ttl_s``, so new mosaics show up without a restart.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import rasterio

from transforms.core.errors import TesseraError
from transforms.core.mosaic import NODATA, ClassEntry, colormap_for
from transforms.core.mosaic_io import class_entries, classification_classes, join_url, walk_stac
from transforms.core.outputs import read_json
from transforms.core.postprocess import blocks, row_areas_m2
from transforms.core.rasterio_io import GDAL_ENV, open_dataset


class CollectionNotFoundError(TesseraError, KeyError):
    """No Collection with that id under the catalogue."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else "collection not found"


@dataclass(frozen=True)
class ItemEntry:
    id: str
    url: str
    bbox: tuple[float, float, float, float]  # WGS84
    classes_url: str | None
    doc: dict[str, Any] = field(compare=False, repr=False)

    def intersects(self, west: float, south: float, east: float, north: float) -> bool:
        w, s, e, n = self.bbox
        return w < east and e > west and s < north and n > south


@dataclass
class CollectionEntry:
    id: str
    url: str
    doc: dict[str, Any]
    items: list[ItemEntry]
    classes: tuple[ClassEntry, ...]

    @property
    def is_mosaic(self) -> bool:
        return self.doc.get("tessera:kind") == "mosaic" or "tessera:mosaic" in self.doc

    @property
    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        return colormap_for(self.classes)

    def stac(self) -> dict[str, Any]:
        """The Collection as stored, with absolute links and its classes in summaries."""
        doc = dict(self.doc)
        summaries = dict(doc.get("summaries") or {})
        summaries.setdefault("classification:classes", classification_classes(self.classes))
        doc["summaries"] = summaries
        doc["links"] = [
            {"rel": "self", "href": f"/collections/{self.id}", "type": "application/json"},
            {"rel": "items", "href": f"/collections/{self.id}/items", "type": "application/geo+json"},
            {"rel": "root", "href": "/", "type": "text/html"},
        ]
        doc["tessera:tiles"] = f"/tiles/{self.id}/{{z}}/{{x}}/{{y}}.png"
        return doc


def _classes_of(doc: dict[str, Any], items: list[ItemEntry]) -> tuple[ClassEntry, ...]:
    raw = (doc.get("summaries") or {}).get("classification:classes")
    if raw:
        table = class_entries({"assets": {"classes": {"classification:classes": raw}}})
        if table:
            return table
    for item in items:
        table = class_entries(item.doc)
        if table:
            return table
    return ()


def load_catalog(catalog_url: str) -> dict[str, CollectionEntry]:
    """Every Collection reachable from the root, with its Items (child/item links)."""
    out: dict[str, CollectionEntry] = {}
    for url, doc in walk_stac(catalog_url, rels=("child",)):
        if doc is not None and doc.get("type") == "Collection":
            items = [it for link in doc.get("links", []) if link.get("rel") == "item"
                     if (it := _item(join_url(url, link["href"]))) is not None]
            out[doc["id"]] = CollectionEntry(doc["id"], url, doc, items, _classes_of(doc, items))
    return out


def _item(url: str) -> ItemEntry | None:
    doc = read_json(url)
    if not doc or doc.get("type") != "Feature" or not doc.get("bbox"):
        return None
    asset = doc.get("assets", {}).get("classes")
    classes_url = join_url(url, asset["href"]) if asset else None
    w, s, e, n = doc["bbox"][:4] if len(doc["bbox"]) == 4 else (doc["bbox"][0], doc["bbox"][1], doc["bbox"][3], doc["bbox"][4])
    return ItemEntry(doc["id"], url, (float(w), float(s), float(e), float(n)), classes_url, doc)


class CatalogIndex:
    """A cached view of the catalogue, refreshed at most every ``ttl_s`` seconds."""

    def __init__(self, catalog_url: str, ttl_s: float = 10.0) -> None:
        self.catalog_url = catalog_url
        self.ttl_s = ttl_s
        self._lock = threading.Lock()
        self._loaded_at = -1e18
        self._collections: dict[str, CollectionEntry] = {}
        self._areas: dict[tuple[str, int, str], dict[int, float]] = {}

    def collections(self) -> dict[str, CollectionEntry]:
        with self._lock:
            if time.monotonic() - self._loaded_at > self.ttl_s:
                self._collections = load_catalog(self.catalog_url)
                self._loaded_at = time.monotonic()
            return self._collections

    def cached_count(self) -> int | None:
        """Collections in the last index built (None before the first), without reloading."""
        return None if self._loaded_at < 0 else len(self._collections)

    def collection(self, collection_id: str) -> CollectionEntry:
        try:
            return self.collections()[collection_id]
        except KeyError:
            known = ", ".join(sorted(self.collections())) or "none"
            raise CollectionNotFoundError(f"no collection {collection_id!r} (known: {known})") from None

    def stats(self, collection_id: str) -> dict[str, Any]:
        """Class areas over the Collection's Items (from Item properties when the product
        computed them, else counted from the classes COG block by block)."""
        coll = self.collection(collection_id)
        names = {c.value: c for c in coll.classes}
        totals: dict[str, float] = {}
        for item in coll.items:
            areas = item.doc.get("properties", {}).get("tessera:class_areas_m2")
            if areas is None and item.classes_url:
                by_value = self._areas_from_cog(item.classes_url)
                areas = {(names[v].name if v in names else str(v)): a for v, a in by_value.items()}
            for name, area in (areas or {}).items():
                totals[name] = totals.get(name, 0.0) + float(area)
        total = sum(totals.values())
        rows = []
        for entry in coll.classes:
            area = totals.pop(entry.name, 0.0)
            rows.append({"value": entry.value, "name": entry.name, "color_hint": entry.colour.lstrip("#").upper(),
                         "area_m2": round(area, 3), "share": round(area / total, 6) if total else 0.0})
        rows += [{"value": None, "name": n, "color_hint": None, "area_m2": round(a, 3),
                  "share": round(a / total, 6) if total else 0.0} for n, a in sorted(totals.items())]
        return {
            "collection": coll.id,
            "items": len(coll.items),
            "mosaic": coll.is_mosaic,
            "total_area_m2": round(total, 3),
            "classes": rows,
            "note": None if coll.is_mosaic else "per-scene Items may overlap: areas in overlaps count once per scene",
        }

    def _areas_from_cog(self, url: str) -> dict[int, float]:
        from transforms.core.mosaic_io import asset_identity

        ident = asset_identity(url)
        key = (ident.href, ident.size, ident.version)
        if key not in self._areas:
            sums = np.zeros(256)
            with rasterio.Env(**GDAL_ENV), open_dataset(url) as ds:
                crs_wkt = ds.crs.to_wkt()
                for win in blocks(ds.height, ds.width, 1024):
                    data = ds.read(1, window=win)
                    row_area = row_areas_m2(crs_wkt, ds.transform, int(win.row_off), int(win.height))
                    sums += np.bincount(data.ravel(), weights=np.broadcast_to(row_area[:, None], data.shape).ravel(),
                                        minlength=256)
            self._areas[key] = {v: float(a) for v, a in enumerate(sums) if a > 0 and v != NODATA}
        return self._areas[key]
