"""Publishing outputs: atomic writes over fsspec, the per-scene finalise, the catalog.

Readers only ever see whole files: local files are written under a temporary name
and renamed; object stores (GCS) publish an object atomically when its upload
completes, so objects are written in one go. The STAC Item is written after its
assets and the catalog after the Items, so whatever a reader finds is complete.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np
from rasterio import Affine
from rasterio.windows import Window

from transforms.core import stac
from transforms.core.errors import InferenceError
from transforms.core.grid import TileGrid, TileIndex
from transforms.core.rasterio_io import SceneInfo
from transforms.core.stitch import NODATA, RasterGeo, assemble_cogs, quicklook_png

TMP_DIR = ".tessera-tmp"


def join(base: str, *parts: str) -> str:
    return "/".join([base.rstrip("/"), *[p.strip("/") for p in parts]])


def _is_local_fs(fs: fsspec.AbstractFileSystem) -> bool:
    protocols = fs.protocol if isinstance(fs.protocol, tuple) else (fs.protocol,)
    return "file" in protocols or "local" in protocols


def write_bytes(url: str, data: bytes) -> None:
    """Write ``data`` at ``url`` so that no reader sees a partial file."""
    fs, path = fsspec.core.url_to_fs(url)
    if _is_local_fs(fs):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        with open(tmp, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
    else:
        fs.pipe_file(path, data)


def put_file(local: str, url: str) -> None:
    """Upload/copy a finished local file to ``url`` atomically."""
    fs, path = fsspec.core.url_to_fs(url)
    if _is_local_fs(fs):
        os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
        tmp = f"{path}.tmp-{uuid.uuid4().hex[:8]}"
        shutil.copyfile(local, tmp)
        os.replace(tmp, path)
    else:
        fs.put_file(local, path)


def read_json(url: str) -> dict[str, Any] | None:
    try:
        with fsspec.open(url, "rb") as f:
            return json.loads(f.read())
    except FileNotFoundError:
        return None


def remove_tree(url: str) -> None:
    """Remove ``url`` and then its parents up to ``.tessera-tmp`` while they are empty,
    so a successful run leaves no trace (object stores have no empty folders anyway)."""
    fs, path = fsspec.core.url_to_fs(url)
    with contextlib.suppress(FileNotFoundError):
        if fs.exists(path):
            fs.rm(path, recursive=True)
    path = path.rstrip("/")
    while TMP_DIR in path.split("/")[:-1] or path.endswith(TMP_DIR):
        parent, _, name = path.rpartition("/")
        with contextlib.suppress(OSError):
            if fs.isdir(path) and not fs.ls(path, detail=False):
                fs.rmdir(path)
        if name == TMP_DIR or not parent:
            break
        path = parent


@dataclass(frozen=True)
class SceneJob:
    """Everything the finalise step needs for one (scene, product)."""

    scene: SceneInfo
    product: str
    product_title: str
    grid: TileGrid
    bands: tuple[int, ...]
    scale: float
    model_path: str
    tmp_url: str  # where this scene's tile results are staged
    output: str

    @property
    def key(self) -> str:
        return f"{self.product}/{self.scene.scene_id}"

    @property
    def item_dir(self) -> str:
        return join(self.output, self.product, self.scene.scene_id)

    def tile_url(self, index: TileIndex) -> str:
        return join(self.tmp_url, f"{index}.npy")


@dataclass(frozen=True)
class TileRecord:
    """A small record per tile after writing: no pixels, just where they are."""

    index: TileIndex
    written: bool  # False: the tile had no valid pixel and was never sent to the model
    # (class value, pixels) in the tile's core, no-data included; None: not counted.
    # The Item's areas come from these instead of a second pass over the class COG.
    counts: tuple[tuple[int, int], ...] | None = None


def finalise_scene(
    job: SceneJob,
    records: Iterable[TileRecord],
    metadata: dict[str, Any],
    *,
    postprocess: Callable[[str, str, np.ndarray | None], tuple[dict[str, dict[str, Any]], dict[str, Any]]]
    | None = None,
) -> str:
    """Assemble the scene's COGs, quicklook and Item from its tile records; return the Item URL.

    Raises ``InferenceError`` if any tile is unaccounted for, so a scene with a lost
    tile is never published.
    """
    from transforms.core.stitch import decode_array

    by_index = {r.index: r for r in records}
    expected = set(job.grid.indices())
    missing = expected - set(by_index)
    if missing:
        raise InferenceError(
            f"{job.scene.url}: {len(missing)} of {len(expected)} tiles have no result "
            f"(first: {sorted(missing)[0]}); nothing was published"
        )
    scene = job.scene
    geo = RasterGeo(scene.width, scene.height, scene.crs_wkt, scene.transform)
    classes_meta = metadata["classes"]
    colormap = {c["id"]: _rgba(c["colour"]) for c in classes_meta}
    colormap[NODATA] = (0, 0, 0, 0)

    areas = _areas_from_records(by_index.values(), scene.crs_wkt, scene.transform)

    def tiles() -> Iterable[tuple[Window, Any]]:
        for index in sorted(by_index):
            if not by_index[index].written:
                continue  # staged as no-data: the GeoTIFF is initialised to it below
            with fsspec.open(job.tile_url(index), "rb") as f:
                planes = decode_array(f.read())
            yield job.grid.core(index), planes

    with tempfile.TemporaryDirectory(prefix="tessera-final-") as work:
        classes_path = os.path.join(work, "classes.tif")
        confidence_path = os.path.join(work, "confidence.tif")
        extra_assets: dict[str, dict[str, Any]] = {}
        extra_props: dict[str, Any] = {}

        def from_classes() -> None:  # while the confidence plane still converts
            nonlocal extra_assets, extra_props
            with open(os.path.join(work, "quicklook.png"), "wb") as f:
                f.write(quicklook_png(classes_path, colormap))
            if postprocess is not None:
                extra_assets, extra_props = postprocess(classes_path, work, areas)

        assemble_cogs(
            geo,
            _with_nodata_fill(tiles(), job.grid, by_index),
            {0: classes_path, 1: confidence_path},
            work,
            colormaps={0: colormap},
            after_first=from_classes,
            codecs={1: "ZSTD"},
        )

        bbox, geometry, native_bbox = stac.footprint(scene.width, scene.height, scene.crs_wkt, scene.transform)
        assets = _assets(metadata, job.product)
        assets.update(extra_assets)
        for name in sorted(os.listdir(work)):
            path = os.path.join(work, name)
            if os.path.isfile(path) and not name.startswith("stage-"):
                put_file(path, join(job.item_dir, name))
        properties: dict[str, Any] = {
            "title": f"{job.product_title or job.product}: {scene.scene_id}",
            "tessera:product": job.product,
            "tessera:source": dict(scene.identity),
            "tessera:bands": list(job.bands),
            "tessera:scale": job.scale,
            **stac.proj_fields(scene.width, scene.height, scene.crs_wkt, scene.epsg, scene.transform, native_bbox),
            **stac.mlm_fields(metadata, job.grid.tile, job.grid.halo),
            **extra_props,
        }
        doc = stac.item(
            item_id=scene.scene_id,
            collection=job.product,
            bbox=bbox,
            geometry=geometry,
            datetime=scene.datetime,
            properties=properties,
            assets=assets,
            source_url=scene.url,
        )
        item_url = join(job.item_dir, f"{scene.scene_id}.json")
        write_bytes(item_url, stac.dumps(doc))
    return item_url


def _areas_from_records(records: Iterable[TileRecord], crs_wkt: str, transform: Any) -> np.ndarray | None:
    """m^2 per class value over the scene from the tiles' counts (exact integer sums, so
    the same for any tiling), or None when a written tile was not counted or the grid's
    pixel area varies (geographic CRS): post-processing then measures the class COG."""
    from transforms.core.postprocess import areas_from_counts

    total = np.zeros(256, dtype=np.int64)
    for record in records:
        if not record.written:
            continue
        if record.counts is None:
            return None
        for value, pixels in record.counts:
            total[value] += pixels
    return areas_from_counts(total, crs_wkt, Affine(*transform))


def _with_nodata_fill(
    tiles: Iterable[tuple[Window, Any]], grid: TileGrid, records: dict[TileIndex, TileRecord]
) -> Iterable[tuple[Window, Any]]:
    from transforms.core.stitch import nodata_planes

    yield from tiles
    for index, record in sorted(records.items()):
        if not record.written:
            yield grid.core(index), nodata_planes(grid, index)


def _rgba(colour: str) -> tuple[int, int, int, int]:
    c = colour.lstrip("#")
    return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def _assets(metadata: dict[str, Any], product: str) -> dict[str, dict[str, Any]]:
    classes = stac.classification_classes(metadata["classes"])
    return {
        "classes": {
            "href": "./classes.tif",
            "type": stac.COG_TYPE,
            "title": f"{product} classes",
            "roles": ["data"],
            "classification:classes": classes,
            "raster:bands": [{"nodata": NODATA, "data_type": "uint8", "sampling": "area"}],
        },
        "confidence": {
            "href": "./confidence.tif",
            "type": stac.COG_TYPE,
            "title": "confidence: round(max class probability * 254)",
            "roles": ["data", "quality"],
            "raster:bands": [{"nodata": NODATA, "data_type": "uint8", "scale": 1 / 254}],
        },
        "quicklook": {
            "href": "./quicklook.png",
            "type": "image/png",
            "title": "quicklook",
            "roles": ["overview", "visual"],
        },
    }


def update_catalog(output: str) -> list[str]:
    """Rewrite ``{output}/catalog.json`` and each product collection from what is there.

    Collections are rebuilt from the Items found on disk, so jobs that ran separately
    (several scenes, several products) end up in one catalog. Collections written by
    other steps (mosaics) are linked as they are.
    """
    fs, root = fsspec.core.url_to_fs(output)
    root = root.rstrip("/")
    if hasattr(fs, "invalidate_cache"):
        fs.invalidate_cache()
    collection_ids: list[str] = []
    for child in sorted(fs.ls(root, detail=False)) if fs.exists(root) else []:
        name = child.rstrip("/").rsplit("/", 1)[-1]
        if name.startswith(".") or not fs.isdir(child):
            continue
        coll_url = join(output, name, "collection.json")
        items = []
        for item_path in sorted(fs.glob(f"{child.rstrip('/')}/*/*.json")):
            item_name = item_path.rsplit("/", 1)[-1]
            parent = item_path.rsplit("/", 2)[-2]
            if item_name != f"{parent}.json":
                continue
            with fs.open(item_path, "rb") as f:
                doc = json.loads(f.read())
            if doc.get("type") == "Feature" and doc.get("collection") == name:
                items.append(doc)
        existing = read_json(coll_url)
        if items and (existing is None or existing.get("tessera:kind", "scenes") == "scenes"):
            first = items[0]["properties"]
            doc = stac.collection(
                name,
                first.get("title", name).split(":")[0],
                f"Per-scene {name} maps produced by tessera.",
                items,
                {"mlm:name": sorted({i["properties"].get("mlm:name") for i in items})},
            )
            doc["tessera:kind"] = "scenes"
            if existing != doc:
                write_bytes(coll_url, stac.dumps(doc))
            collection_ids.append(name)
        elif existing is not None:
            collection_ids.append(name)
    cat = stac.catalog(collection_ids)
    cat_url = join(output, "catalog.json")
    if read_json(cat_url) != cat:
        write_bytes(cat_url, stac.dumps(cat))
    return collection_ids
