"""XYZ map tiles (WebMercatorQuad) of a Collection's classes COGs, with its colour map.

rio-tiler reads only the COG blocks (or overview blocks) under the tile, reprojects
them with nearest neighbour (classes must not be blended) and renders a PNG whose
alpha is the no-data mask.
"""

from __future__ import annotations

import io
from functools import lru_cache

import morecantile
from PIL import Image
from rio_tiler.errors import EmptyMosaicError, TileOutsideBounds
from rio_tiler.io import Reader
from rio_tiler.models import ImageData
from rio_tiler.mosaic import mosaic_reader

from services.products.catalog import CollectionEntry
from transforms.core.errors import ConfigError

TILE_SIZE = 256
MAX_ZOOM = 24


@lru_cache(maxsize=1)
def tms() -> morecantile.TileMatrixSet:
    return morecantile.tms.get("WebMercatorQuad")


@lru_cache(maxsize=1)
def empty_png() -> bytes:
    buf = io.BytesIO()
    Image.new("RGBA", (TILE_SIZE, TILE_SIZE), (0, 0, 0, 0)).save(buf, format="PNG", optimize=True)
    return buf.getvalue()


def check_tile(z: int, x: int, y: int) -> None:
    if not 0 <= z <= MAX_ZOOM or not (0 <= x < 2**z and 0 <= y < 2**z):
        raise ConfigError(f"tile {z}/{x}/{y} is not a WebMercatorQuad tile (0 <= x, y < 2^z, z <= {MAX_ZOOM})")


def _read(url: str, x: int, y: int, z: int) -> ImageData:
    with Reader(url, tms=tms()) as src:
        return src.tile(x, y, z, tilesize=TILE_SIZE, resampling_method="nearest", reproject_method="nearest")


def render_tile(coll: CollectionEntry, z: int, x: int, y: int, max_items: int = 64) -> bytes | None:
    """The PNG for one tile, or None when no Item of the Collection covers it (or more
    than ``max_items`` would have to be read: zoom in)."""
    check_tile(z, x, y)
    west, south, east, north = tms().bounds(morecantile.Tile(x, y, z))
    items = [i for i in coll.items if i.classes_url and i.intersects(west, south, east, north)]
    if not items or len(items) > max_items:
        return None
    # latest first: where per-scene Items overlap, the newest is drawn (mosaic tiles never overlap)
    items.sort(key=lambda i: str(i.doc.get("properties", {}).get("datetime") or ""), reverse=True)
    try:
        image, _ = mosaic_reader([i.classes_url for i in items], _read, x, y, z, threads=0)
    except (EmptyMosaicError, TileOutsideBounds):
        return None
    return image.render(img_format="PNG", colormap=coll.colormap)
