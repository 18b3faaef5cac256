"""The COG writer: overviews built in the staging file give GDAL's own COG (byte for byte
where the sides divide by every overview factor)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
import rasterio.shutil
from rasterio.transform import from_origin

from transforms.core.stitch import (
    COG_BLOCK,
    COG_DEFLATE_LEVEL,
    cog_overview_factors,
    quicklook_png,
    staging_to_cog,
)


def _staging(path: Path, height: int, width: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # class-map-like: smooth regions plus noise, and a no-data corner
    data = (np.add.outer(np.arange(height) // 37, np.arange(width) // 53) % 7).astype(np.uint8)
    data[rng.random((height, width)) < 0.05] = 3
    data[: height // 5, : width // 7] = 255
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": 1, "dtype": "uint8",
        "crs": "EPSG:32631", "transform": from_origin(500000, 4800000, 30, 30), "nodata": 255,
        "tiled": True, "blockxsize": COG_BLOCK, "blockysize": COG_BLOCK,
    }
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data, 1)
        ds.write_colormap(1, {0: (10, 20, 30, 255), 3: (200, 100, 0, 255)})


@pytest.mark.parametrize("height,width", [(300, 200), (512, 512), (1536, 1024), (2048, 4096)])
def test_staging_to_cog_equals_the_cog_drivers_own_overviews(tmp_path: Path, height: int, width: int) -> None:
    staging, ours, gdal = tmp_path / "stage.tif", tmp_path / "ours.tif", tmp_path / "gdal.tif"
    _staging(staging, height, width, seed=height)
    _gdal_cog(staging, gdal)
    staging_to_cog(str(staging), str(ours))
    with rasterio.open(ours) as ds:
        assert ds.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert ds.overviews(1) == cog_overview_factors(width, height)
    assert ours.read_bytes() == gdal.read_bytes()


def test_odd_sizes_round_overviews_up_like_gdaladdo(tmp_path: Path) -> None:
    """Where a side does not divide by a factor, GTiff's overviews round up (gdaladdo)
    and the COG driver's round down: same levels, one row or column more, so the
    nearest samples of the deeper levels come from slightly different places."""
    staging, ours, gdal = tmp_path / "stage.tif", tmp_path / "ours.tif", tmp_path / "gdal.tif"
    _staging(staging, 1500, 2100, seed=1)
    _gdal_cog(staging, gdal)
    with rasterio.open(staging) as ds:
        full = ds.read(1)
    staging_to_cog(str(staging), str(ours))
    with rasterio.open(ours) as o, rasterio.open(gdal) as g:
        assert o.tags(ns="IMAGE_STRUCTURE")["LAYOUT"] == "COG"
        assert o.overviews(1) == g.overviews(1) == [2, 4, 8]
        assert np.array_equal(o.read(1), full) and o.colormap(1)[3][:3] == (200, 100, 0)
    for level, factor in enumerate([2, 4, 8]):
        with rasterio.open(ours, overview_level=level) as o:
            assert o.shape == (-(-1500 // factor), -(-2100 // factor))
            if factor == 2:  # 1500 x 2100 halves exactly: GDAL's own pixels
                with rasterio.open(gdal, overview_level=level) as g:
                    assert np.array_equal(o.read(1), g.read(1))


def _gdal_cog(staging: Path, out: Path) -> None:
    rasterio.shutil.copy(staging, out, driver="COG", compress="DEFLATE", level=COG_DEFLATE_LEVEL,
                         blocksize=COG_BLOCK, overview_resampling="nearest", resampling="nearest")


def test_overview_factors_stop_once_one_block_holds_the_overview() -> None:
    assert cog_overview_factors(512, 512) == []
    assert cog_overview_factors(513, 10) == [2]
    assert cog_overview_factors(9216, 9216) == [2, 4, 8, 16, 32]
    assert cog_overview_factors(1025, 100, block=256) == [2, 4, 8]


def test_quicklook_decodes_to_the_colour_map_with_transparent_nodata(tmp_path: Path) -> None:
    import io

    from PIL import Image

    staging = tmp_path / "stage.tif"
    _staging(staging, 700, 450, 3)
    colormap = {v: (10 * v, 255 - 20 * v, 7 * v, 255) for v in range(7)}
    colormap[255] = (0, 0, 0, 0)
    png = quicklook_png(str(staging), colormap, max_side=300)
    with rasterio.open(staging) as ds:
        classes = ds.read(1, out_shape=(ds.height // 3, ds.width // 3), resampling=rasterio.enums.Resampling.nearest)
    rgba = np.asarray(Image.open(io.BytesIO(png)).convert("RGBA"))
    lut = np.zeros((256, 4), np.uint8)
    for value, colour in colormap.items():
        lut[value] = colour
    np.testing.assert_array_equal(rgba, lut[classes])
    assert rgba[0, 0, 3] == 0 and rgba[-1, -1, 3] == 255
