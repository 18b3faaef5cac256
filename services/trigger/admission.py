"""Admission: is the announced object there, intact, a raster we can map, and for which products?

Checks, cheapest first: the object exists; on GCS its generation is the announced one
(else the event is stale); its size and CRC32C match the event; its header opens with a
CRS, a real (integer or float) data type, sane dimensions and enough bands for at least
one configured product. A failed check is a ``Rejected`` with a reason code and a message:
the service quarantines it. Only storage being unreachable raises (the sender retries).

CRC32C: GCS computes it server-side, so for ``gs://`` the object's metadata is compared
with the event (no download); other filesystems stream the object through CRC32C
(``google_crc32c`` when installed, else a pure-Python table).
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np

from models.bundle import read_metadata
from services.trigger.errors import StorageUnavailableError
from services.trigger.events import Arrival
from transforms.core.errors import ConfigError, InvalidSceneError, SceneNotFoundError
from transforms.core.products import ProductProfile, load_profile
from transforms.core.rasterio_io import DEFAULT_MAX_PIXELS, SceneInfo, inspect_scene


def _crc_new() -> Any:
    try:  # ships with google-cloud-storage / gcsfs; C-accelerated
        import google_crc32c
    except ImportError:  # pragma: no cover - the fallback is tested directly
        return _PureCrc32c()
    return google_crc32c.Checksum()


def _table() -> list[int]:
    poly, table = 0x82F63B78, []
    for n in range(256):
        c = n
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return table


class _PureCrc32c:
    """CRC32C (Castagnoli), the same interface as ``google_crc32c.Checksum``."""

    _TABLE = _table()

    def __init__(self) -> None:
        self._crc = 0xFFFFFFFF

    def update(self, data: bytes) -> None:
        crc, table = self._crc, self._TABLE
        for byte in data:
            crc = table[(crc ^ byte) & 0xFF] ^ (crc >> 8)
        self._crc = crc

    def digest(self) -> bytes:
        return (self._crc ^ 0xFFFFFFFF).to_bytes(4, "big")


def crc32c_b64(stream: Any, chunk: int = 8 * 2**20) -> str:
    """Base64 of the big-endian CRC32C, as GCS reports it."""
    checksum = _crc_new()
    while block := stream.read(chunk):
        checksum.update(block)
    return base64.b64encode(checksum.digest()).decode()


@dataclass(frozen=True)
class Admitted:
    products: tuple[str, ...]
    info: SceneInfo


@dataclass(frozen=True)
class Rejected:
    code: str  # missing | stale | size | crc32c | header | dtype | no_product
    reason: str


@dataclass(frozen=True)
class ProductRequirement:
    profile: ProductProfile
    bands_required: int  # highest 1-based source band the mapping reads


def product_requirements(names: Sequence[str]) -> list[ProductRequirement]:
    """Profiles and their models' metadata, read once at start-up (a bad one fails fast)."""
    if not names:
        raise ConfigError("no products configured; pass --products NAME...")
    out = []
    for name in names:
        profile = load_profile(name)
        meta = read_metadata(profile.model)
        out.append(ProductRequirement(profile, max(profile.band_indexes(len(meta.bands)))))
    return out


class Admitter:
    def __init__(self, requirements: Sequence[ProductRequirement],
                 max_pixels: int = DEFAULT_MAX_PIXELS) -> None:
        if not requirements:
            raise ConfigError("no products configured; pass --products NAME...")
        self.requirements = list(requirements)
        self.max_pixels = max_pixels

    @classmethod
    def for_products(cls, names: Sequence[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> Admitter:
        return cls(product_requirements(names), max_pixels)

    def admit(self, arrival: Arrival) -> Admitted | Rejected:
        url = arrival.url
        try:
            fs, path = fsspec.core.url_to_fs(url)
            info = fs.info(path)
        except FileNotFoundError:
            return Rejected("missing", f"{url} does not exist (deleted before admission?)")
        except OSError as exc:
            raise StorageUnavailableError(f"cannot reach {url}: {exc}") from exc
        if info.get("type") == "directory":
            return Rejected("missing", f"{url} is a folder, not an object")
        current = info.get("generation")
        if current is not None and arrival.kind != "watch" and str(current) != arrival.generation:
            return Rejected("stale", f"{url} is now generation {current}, the event announced "
                                     f"{arrival.generation}; the newer generation has its own event")
        size = int(info.get("size") or 0)
        if arrival.size is not None and size != arrival.size:
            return Rejected("size", f"{url} is {size} bytes, the event says {arrival.size}")
        if arrival.crc32c is not None:
            actual = info.get("crc32c")
            if actual is None:
                try:
                    with fs.open(path, "rb") as f:
                        actual = crc32c_b64(f)
                except OSError as exc:
                    raise StorageUnavailableError(f"cannot read {url}: {exc}") from exc
            if actual != arrival.crc32c:
                return Rejected("crc32c", f"{url} has CRC32C {actual}, the event says {arrival.crc32c}")
        return self.check_header(url)

    def check_header(self, url: str) -> Admitted | Rejected:
        fewest = min(r.bands_required for r in self.requirements)
        try:
            info = inspect_scene(url, bands_required=fewest, max_pixels=self.max_pixels)
        except SceneNotFoundError as exc:
            return Rejected("missing", str(exc))
        except InvalidSceneError as exc:
            return Rejected("header", str(exc))
        kind = np.dtype(info.dtype).kind
        if kind not in "iuf":
            return Rejected("dtype", f"{url} has data type {info.dtype}; integer or float bands are needed")
        if info.width < 1 or info.height < 1:
            return Rejected("header", f"{url} is {info.width}x{info.height} pixels")
        products = tuple(r.profile.name for r in self.requirements
                         if info.count >= r.bands_required and r.profile.accepts(info.count, info.dtype))
        if not products:
            return Rejected("no_product", f"{url} has {info.count} {info.dtype} band(s); no configured "
                                          "product applies to that layout")
        return Admitted(products, info)


def crc32c_of_file(path: str | os.PathLike[str]) -> str:
    with open(path, "rb") as f:
        return crc32c_b64(f)
