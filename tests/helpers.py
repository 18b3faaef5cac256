"""Test helpers: seeded synthetic rasters and the whole-scene reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import rasterio
from rasterio.transform import from_origin


def synthetic_scene(
    path: Path | str,
    height: int,
    width: int,
    *,
    bands: int = 4,
    seed: int = 0,
    nodata_box: tuple[int, int, int, int] | None = None,
    dtype: str = "uint16",
    crs: str | None = "EPSG:32631",
    blocksize: int | None = None,
) -> np.ndarray:
    """A smooth-plus-noise 4-band scene with an optional no-data box (value 0)."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    data = np.empty((bands, height, width), dtype=np.float64)
    for b in range(bands):
        phase = rng.uniform(0, 6.28)
        data[b] = 1000 + 600 * np.sin(xx / (7 + 3 * b) + phase) * np.cos(yy / (11 + b)) + rng.normal(0, 120, (height, width))
    data = np.clip(data, 1, 4000).astype(dtype)
    if nodata_box is not None:
        r0, r1, c0, c1 = nodata_box
        data[:, r0:r1, c0:c1] = 0
    profile = {
        "driver": "GTiff", "width": width, "height": height, "count": bands, "dtype": dtype,
        "transform": from_origin(600000, 5400000, 1.5, 1.5), "nodata": 0,
    }
    if crs:
        profile["crs"] = crs
    if blocksize:
        profile.update(tiled=True, blockxsize=blocksize, blockysize=blocksize)
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    return data


def reference_probabilities(predict, scene: np.ndarray, halo: int, alignment: int) -> np.ndarray:
    """DESIGN.md's definition of seamless: the model once on the whole scene,
    reflect-padded by the halo (bottom/right up to a multiple of alignment), cropped."""
    _, h, w = scene.shape
    extra_h = (-h) % alignment
    extra_w = (-w) % alignment
    padded = np.pad(scene.astype(np.float32), ((0, 0), (halo, halo + extra_h), (halo, halo + extra_w)), mode="reflect")
    out = predict(np.moveaxis(padded, 0, -1)[None])[0]
    return out[halo : halo + h, halo : halo + w]
