"""Admission: exists, size, CRC32C, raster header, and which products fit."""

from __future__ import annotations

import base64
from pathlib import Path

import google_crc32c
import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin
from trigger_util import write_scene

from services.trigger.admission import (
    Admitted,
    Admitter,
    ProductRequirement,
    Rejected,
    _PureCrc32c,
    crc32c_of_file,
)
from services.trigger.events import Arrival
from transforms.core.products import ProductProfile


def _arrival(path: Path, *, size: int | None = -1, crc: str | None = "auto", generation: str = "1") -> Arrival:
    return Arrival(bucket="b", name=path.name, generation=generation,
                   size=path.stat().st_size if size == -1 else size,
                   crc32c=crc32c_of_file(path) if crc == "auto" else crc,
                   url=f"file://{path}", kind="pubsub")


@pytest.fixture(scope="module")
def admitter() -> Admitter:
    return Admitter.for_products(["landcover", "landsat-rgb"], max_pixels=100_000)


def test_crc32c_matches_google_and_known_vector() -> None:
    data = np.random.default_rng(0).bytes(100_003)
    pure = _PureCrc32c()
    pure.update(data[:5000])
    pure.update(data[5000:])
    assert pure.digest() == google_crc32c.Checksum(data).digest()
    check = _PureCrc32c()
    check.update(b"123456789")
    assert check.digest().hex() == "e3069283"  # the CRC-32C check value


def test_good_scene_admitted_for_every_fitting_product(tmp_path: Path, admitter: Admitter) -> None:
    # the profiles' applies_to routes 4-band uint16 to landcover, 3-band uint8 to landsat-rgb
    four = write_scene(tmp_path / "four.tif", bands=4)
    three = write_scene(tmp_path / "three.tif", bands=3, dtype="uint8")
    result = admitter.admit(_arrival(four))
    assert isinstance(result, Admitted) and result.products == ("landcover",)
    assert result.info.count == 4 and result.info.dtype == "uint16"
    result = admitter.admit(_arrival(three))
    assert isinstance(result, Admitted) and result.products == ("landsat-rgb",)
    five_float = write_scene(tmp_path / "ff.tif", bands=4, dtype="float32")
    assert _rejected(admitter.admit(_arrival(five_float)), "no_product")


def test_missing_size_and_crc_are_optional(tmp_path: Path, admitter: Admitter) -> None:
    scene = write_scene(tmp_path / "a.tif")
    assert isinstance(admitter.admit(_arrival(scene, size=None, crc=None)), Admitted)


def _rejected(result: object, code: str) -> Rejected:
    assert isinstance(result, Rejected), result
    assert result.code == code, result
    return result


def test_rejections(tmp_path: Path, admitter: Admitter) -> None:
    scene = write_scene(tmp_path / "a.tif")
    _rejected(admitter.admit(_arrival(tmp_path / "a.tif", size=5)), "size")
    wrong_crc = base64.b64encode(b"\0\0\0\1").decode()
    assert "CRC32C" in _rejected(admitter.admit(_arrival(scene, crc=wrong_crc)), "crc32c").reason
    gone = Arrival("b", "gone.tif", "1", None, None, f"file://{tmp_path}/gone.tif", "pubsub")
    _rejected(admitter.admit(gone), "missing")
    folder = Arrival("b", "d", "1", None, None, f"file://{tmp_path}", "pubsub")
    _rejected(admitter.admit(folder), "missing")


def test_header_rejections(tmp_path: Path, admitter: Admitter) -> None:
    no_crs = write_scene(tmp_path / "nocrs.tif", crs=None)
    assert "CRS" in _rejected(admitter.admit(_arrival(no_crs)), "header").reason
    two = write_scene(tmp_path / "two.tif", bands=2)
    assert "band" in _rejected(admitter.admit(_arrival(two)), "header").reason
    big = write_scene(tmp_path / "big.tif", size=400)  # 160k pixels > cap of 100k
    assert "cap" in _rejected(admitter.admit(_arrival(big)), "header").reason
    text = tmp_path / "notes.tif"
    text.write_text("not a raster")
    _rejected(admitter.admit(_arrival(text)), "header")
    cplx = tmp_path / "complex.tif"
    with rasterio.open(cplx, "w", driver="GTiff", width=8, height=8, count=4, dtype="complex64",
                       crs="EPSG:32631", transform=from_origin(0, 0, 1, 1)) as ds:
        ds.write(np.ones((4, 8, 8), dtype="complex64"))
    assert "complex" in _rejected(admitter.admit(_arrival(cplx)), "header").reason


def test_float_scene_is_acceptable_without_a_dtype_filter(tmp_path: Path) -> None:
    anything = Admitter([ProductRequirement(ProductProfile(name="any"), bands_required=4)])
    scene = write_scene(tmp_path / "f.tif", dtype="float32")
    result = anything.admit(_arrival(scene))
    assert isinstance(result, Admitted) and result.products == ("any",)
