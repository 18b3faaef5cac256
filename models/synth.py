"""Synthetic SPOT 6/7-like scenes with pixel labels, for training and tests.

A scene is 4 bands (B, G, R, NIR), uint16 digital numbers, 1.5 m pixels, on
Lambert-93 (EPSG:2154) somewhere over mainland France, nodata 0 outside a tilted
acquisition footprint. Labels are uint8: 0 background, 1 building, 2 road,
3 vegetation, 4 water, 255 nodata.

The scenes are built to defeat per-pixel spectral rules while staying learnable from
shape and context: roofs come in road-grey, bare-soil brown, white (like sun glint on
water) and dark slate (like water and shadows); buildings cast shadows onto whatever
lies beside them; green crops are as bright in NIR as trees but smooth where trees are
textured; every scene has its own gain and a haze gradient. Pure numpy: the same
``(seed, index, size)`` always gives the same bytes.

Files written by :func:`main`: ``OUT/scene_{seed}_{i:03d}.tif`` (image) and
``OUT/labels_{seed}_{i:03d}.tif`` (labels), on the same grid, through fsspec.
"""

from __future__ import annotations

import argparse
import math
from typing import NamedTuple

import fsspec
import numpy as np
from affine import Affine
from rasterio.crs import CRS

BANDS = ["B", "G", "R", "NIR"]
CLASS_NAMES = ["background", "building", "road", "vegetation", "water"]
NODATA_LABEL = 255
PIXEL_SIZE = 1.5
CRS_CODE = "EPSG:2154"

BACKGROUND, BUILDING, ROAD, VEGETATION, WATER = range(5)

# Surface reflectances (B, G, R, NIR).
SOIL = np.array([0.075, 0.095, 0.13, 0.21])
STUBBLE = np.array([0.07, 0.095, 0.115, 0.27])
CROP = np.array([0.035, 0.075, 0.045, 0.40])
GRASS = np.array([0.045, 0.08, 0.06, 0.33])
TREE = np.array([0.03, 0.06, 0.035, 0.38])
WATER_R = np.array([0.06, 0.065, 0.045, 0.02])
ASPHALT = np.array([0.085, 0.095, 0.105, 0.135])
CONCRETE = np.array([0.17, 0.18, 0.19, 0.21])
ROOFS = {
    "tile": np.array([0.08, 0.085, 0.19, 0.26]),
    "grey": ASPHALT * 1.05,
    "concrete": CONCRETE,
    "soil": SOIL,
    "white": np.array([0.42, 0.43, 0.44, 0.45]),
    "slate": np.array([0.05, 0.05, 0.055, 0.06]),
}
ROOF_P = np.array([0.3, 0.2, 0.12, 0.14, 0.12, 0.12])


class SynthScene(NamedTuple):
    image: np.ndarray  # uint16 (4, H, W)
    labels: np.ndarray  # uint8 (H, W)
    transform: Affine
    crs: CRS


def _smooth(rng: np.random.Generator, shape: tuple[int, int], sigma: float) -> np.ndarray:
    """Gaussian-filtered white noise (periodic, via FFT), zero mean, unit std."""
    h, w = shape
    noise = rng.standard_normal(shape)
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))
    out = np.fft.irfft2(np.fft.rfft2(noise) * kernel, s=shape)
    out -= out.mean()
    return out / (out.std() + 1e-12)


def _blur(image: np.ndarray, sigma: float) -> np.ndarray:
    """Gaussian blur of an ``(H, W, C)`` array (periodic edges, via FFT)."""
    h, w = image.shape[:2]
    fy = np.fft.fftfreq(h)[:, None]
    fx = np.fft.rfftfreq(w)[None, :]
    kernel = np.exp(-2 * (math.pi * sigma) ** 2 * (fy**2 + fx**2))[..., None]
    return np.fft.irfft2(np.fft.rfft2(image, axes=(0, 1)) * kernel, s=(h, w), axes=(0, 1))


def _segment_mask(h: int, w: int, p0: np.ndarray, p1: np.ndarray, half: float) -> tuple[tuple[slice, slice], np.ndarray] | None:
    """Pixels within ``half`` of the segment p0-p1 (row, col), as (bbox slices, mask)."""
    r0 = int(max(0, math.floor(min(p0[0], p1[0]) - half - 1)))
    r1 = int(min(h, math.ceil(max(p0[0], p1[0]) + half + 2)))
    c0 = int(max(0, math.floor(min(p0[1], p1[1]) - half - 1)))
    c1 = int(min(w, math.ceil(max(p0[1], p1[1]) + half + 2)))
    if r0 >= r1 or c0 >= c1:
        return None
    rr, cc = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    d = p1 - p0
    length2 = float(d @ d) or 1e-9
    t = np.clip(((rr - p0[0]) * d[0] + (cc - p0[1]) * d[1]) / length2, 0, 1)
    dist2 = (rr - p0[0] - t * d[0]) ** 2 + (cc - p0[1] - t * d[1]) ** 2
    return (slice(r0, r1), slice(c0, c1)), dist2 <= half * half


def _draw_polyline(target: np.ndarray, points: np.ndarray, half: float) -> None:
    h, w = target.shape
    for p0, p1 in zip(points[:-1], points[1:], strict=False):
        hit = _segment_mask(h, w, p0, p1, half)
        if hit is not None:
            target[hit[0]] |= hit[1]


def _wander(rng: np.random.Generator, start: np.ndarray, angle: float, length: float, step: float, wiggle: float) -> np.ndarray:
    pts = [start.astype(np.float64)]
    for _ in range(int(length / step)):
        angle += rng.normal(0, wiggle)
        pts.append(pts[-1] + step * np.array([math.sin(angle), math.cos(angle)]))
    return np.array(pts)


def _rect(h: int, w: int, centre: np.ndarray, angle: float, half_long: float, half_short: float):
    """A rotated rectangle: (bbox slices, mask, signed across-axis coordinate)."""
    ext = half_long + half_short + 1
    r0, r1 = int(max(0, centre[0] - ext)), int(min(h, centre[0] + ext + 1))
    c0, c1 = int(max(0, centre[1] - ext)), int(min(w, centre[1] + ext + 1))
    if r0 >= r1 or c0 >= c1:
        return None
    rr, cc = np.mgrid[r0:r1, c0:c1].astype(np.float32)
    dr, dc = rr - centre[0], cc - centre[1]
    along = dr * math.sin(angle) + dc * math.cos(angle)
    across = -dr * math.cos(angle) + dc * math.sin(angle)
    mask = (np.abs(along) <= half_long) & (np.abs(across) <= half_short)
    return (slice(r0, r1), slice(c0, c1)), mask, across


def synth_scene(seed: int, size: int = 512, index: int = 0) -> SynthScene:
    """One scene and its labels; deterministic in ``(seed, index, size)``."""
    rng = np.random.default_rng([seed, index, size])
    h = w = size
    scale = size / 512.0
    refl = np.empty((h, w, 4), np.float64)
    labels = np.zeros((h, w), np.uint8)

    # Field patchwork (background): Voronoi parcels, each soil, stubble, crop or grass.
    n_parcels = max(4, int(30 * scale * scale))
    seeds = rng.uniform(0, size, (n_parcels, 2))
    rr, cc = np.mgrid[0:h, 0:w].astype(np.float32)
    stride = 4
    coarse = ((rr[::stride, ::stride, None] - seeds[:, 0]) ** 2 + (cc[::stride, ::stride, None] - seeds[:, 1]) ** 2).argmin(-1)
    parcel = np.repeat(np.repeat(coarse, stride, 0), stride, 1)[:h, :w]
    kinds = rng.choice(4, n_parcels, p=[0.3, 0.2, 0.3, 0.2])
    bases = np.stack([SOIL, STUBBLE, CROP, GRASS])[kinds] * rng.uniform(0.85, 1.15, (n_parcels, 1))
    refl[:] = bases[parcel]
    row_angle = rng.uniform(0, math.pi, n_parcels)[parcel]
    stripes = np.sin((rr * np.sin(row_angle) + cc * np.cos(row_angle)) * (2 * math.pi / 6.0))
    refl *= (1 + 0.03 * stripes + 0.04 * _smooth(rng, (h, w), 6))[..., None]

    # Water: a river and ponds, with sun glint.
    water = np.zeros((h, w), bool)
    if rng.random() < 0.6:
        side = rng.uniform(0, size)
        river = _wander(rng, np.array([-10.0, side]), math.pi / 2 + rng.normal(0, 0.4), size * 1.6, 8, 0.12)
        _draw_polyline(water, river, rng.uniform(6, 16) * max(scale, 0.5))
    if rng.random() < 0.6:
        water |= _smooth(rng, (h, w), 18 * scale + 2) > rng.uniform(2.0, 2.6)

    # Vegetation: woods, hedgerows on parcel edges, isolated trees.
    veg = (_smooth(rng, (h, w), 22 * scale + 2) > rng.uniform(0.7, 1.2)) & ~water
    edges = (parcel != np.roll(parcel, 1, 0)) | (parcel != np.roll(parcel, 1, 1))
    hedge_parcels = rng.random(n_parcels) < 0.3
    hedge = edges & hedge_parcels[parcel]
    hedge = hedge | np.roll(hedge, 1, 0) | np.roll(hedge, 1, 1) | np.roll(hedge, -1, 1)
    veg |= hedge & ~water

    # Roads: main roads crossing the scene, a street grid around each town centre.
    road = np.zeros((h, w), bool)
    marks = np.zeros((h, w), bool)
    streets: list[tuple[np.ndarray, np.ndarray, float]] = []
    towns = [rng.uniform(0.2 * size, 0.8 * size, 2) for _ in range(rng.integers(1, 3))]
    for town in towns:
        angle = rng.uniform(0, math.pi)
        start = town - size * np.array([math.sin(angle), math.cos(angle)])
        main_road = _wander(rng, start, angle, size * 2.2, 10, 0.03)
        half = rng.uniform(3.5, 5.0)
        _draw_polyline(road, main_road, half)
        if rng.random() < 0.6:
            dash = main_road[(np.arange(len(main_road)) % 2) == 0]
            for a, b in zip(dash[:-1:2], dash[1::2], strict=False):
                _draw_polyline(marks, np.stack([a, a + (b - a) * 0.5]), 0.5)
        streets.append((main_road[0], main_road[-1], half))
        radius = rng.uniform(90, 170) * scale
        spacing = rng.uniform(38, 60) * scale
        u = np.array([math.sin(angle), math.cos(angle)])
        v = np.array([u[1], -u[0]])
        jitter = rng.normal(0, 0.04)
        for k in np.arange(-radius, radius + 1, spacing):
            for axis, other in ((u, v), (v, u)):
                if rng.random() < 0.15:
                    continue
                a = town + k * other - radius * axis
                b = town + k * other + radius * axis + jitter * radius * other
                half_s = rng.uniform(2.2, 3.5)
                _draw_polyline(road, np.stack([a, b]), half_s)
                streets.append((a, b, half_s))
    veg &= ~road

    # Buildings along streets, set back and aligned with them; a few farm sheds.
    building = np.zeros((h, w), bool)
    height = np.zeros((h, w), np.float32)
    roof = np.zeros((h, w, 4))
    occupied = road | water | building
    roof_names = list(ROOFS)
    candidates: list[tuple[np.ndarray, float, float, float]] = []
    for a, b, half_s in streets:
        d = b - a
        length = float(np.hypot(*d))
        if length < 1:
            continue
        u = d / length
        n = np.array([-u[1], u[0]])
        angle = math.atan2(u[0], u[1])
        pos = rng.uniform(0, 10)
        while pos < length:
            hl = rng.uniform(4.5, 13) * max(scale, 0.6)
            hs = rng.uniform(3.5, 7.5) * max(scale, 0.6)
            for sgn in (-1, 1):
                if rng.random() < 0.8:
                    setback = half_s + hs + rng.uniform(2, 7)
                    candidates.append((a + u * (pos + hl) + sgn * n * setback, angle, hl, hs))
            pos += 2 * hl + rng.uniform(3, 12)
    for _ in range(rng.integers(2, 6)):
        candidates.append((rng.uniform(0, size, 2), rng.uniform(0, math.pi), rng.uniform(12, 24) * scale, rng.uniform(8, 15) * scale))
    for centre, angle, hl, hs in candidates:
        hit = _rect(h, w, centre, angle, hl, hs)
        if hit is None:
            continue
        sl, mask, across = hit
        if not mask.any() or (occupied[sl] & mask).any():
            continue
        grown = _rect(h, w, centre, angle, hl + 2, hs + 2)
        if grown is not None and (occupied[grown[0]] & grown[1]).any():
            continue
        kind = rng.choice(len(roof_names), p=ROOF_P)
        colour = ROOFS[roof_names[kind]] * rng.uniform(0.85, 1.15)
        gable = 1 + np.where(across > 0, 1, -1) * rng.uniform(0.0, 0.18)
        roof[sl][mask] = (colour[None, :] * gable[mask][:, None])
        building[sl] |= mask
        occupied[sl] |= mask
        height[sl][mask] = rng.uniform(3, 9)

    # Scene-wide sun: shadows of buildings fall away from it.
    sun_az = rng.uniform(0, 2 * math.pi)
    sun_el = rng.uniform(math.radians(30), math.radians(60))
    shadow = np.zeros((h, w), bool)
    max_len = int(9 / math.tan(sun_el) / PIXEL_SIZE) + 1
    step_r, step_c = -math.cos(sun_az), math.sin(sun_az)
    for k in range(1, max_len + 1):
        dr, dc = int(round(k * step_r)), int(round(k * step_c))
        cast = np.roll(np.roll(height, dr, 0), dc, 1) > k * PIXEL_SIZE * math.tan(sun_el)
        shadow |= cast
    shadow &= ~building

    # Compose reflectance.
    tree_tex = 1 + 0.22 * _smooth(rng, (h, w), 1.6) - 0.25 * (_smooth(rng, (h, w), 2.5) > 1.0)
    refl[veg] = TREE * rng.uniform(0.9, 1.1) * tree_tex[veg][:, None]
    turbid = 1 + 0.15 * _smooth(rng, (h, w), 20)
    refl[water] = WATER_R * turbid[water][:, None]
    glint = (_smooth(rng, (h, w), 1.2) > rng.uniform(1.8, 2.6)) & water
    refl[glint] += rng.uniform(0.2, 0.45)
    concrete_roads = rng.random() < 0.3
    road_tex = 1 + 0.06 * _smooth(rng, (h, w), 1.5)
    refl[road] = (CONCRETE if concrete_roads else ASPHALT) * road_tex[road][:, None]
    refl[road & marks] = ROOFS["white"]
    refl[building] = roof[building] * (1 + 0.04 * _smooth(rng, (h, w), 1.0))[building][:, None]
    refl[shadow & ~water] *= np.array([0.45, 0.38, 0.33, 0.3])

    labels[veg] = VEGETATION
    labels[water] = WATER
    labels[road] = ROAD
    labels[building] = BUILDING

    # Sensor: per-scene gain, a haze gradient strongest in blue, noise, 12-bit range.
    gain = rng.uniform(0.75, 1.25) * rng.uniform(0.95, 1.05, 4)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (rr * math.sin(direction) + cc * math.cos(direction)) / size
    haze = rng.uniform(0, 500) * (ramp - ramp.min() + 0.3 * _smooth(rng, (h, w), 60))[..., None]
    refl = _blur(refl, rng.uniform(0.4, 0.8))  # optics + pansharpening: edges are not crisp
    dn = refl * 10000 * gain + haze * np.array([1.0, 0.75, 0.55, 0.3]) + rng.normal(0, 20, (h, w, 4))
    image = np.clip(np.rint(dn), 1, 4095).astype(np.uint16).transpose(2, 0, 1)

    # Acquisition footprint: a tilted rectangle; outside it is nodata.
    tilt = rng.uniform(-0.2, 0.2)
    margin = rng.uniform(0.0, 0.12, 2) * size
    cr, cc0 = (h - 1) / 2, (w - 1) / 2
    along = (rr - cr) * math.cos(tilt) - (cc - cc0) * math.sin(tilt)
    across = (rr - cr) * math.sin(tilt) + (cc - cc0) * math.cos(tilt)
    valid = (np.abs(along) <= h / 2 - margin[0]) & (np.abs(across) <= w / 2 - margin[1])
    image[:, ~valid] = 0
    labels[~valid] = NODATA_LABEL

    x0 = 600_000 + PIXEL_SIZE * int(rng.integers(0, 200_000))
    y0 = 6_300_000 + PIXEL_SIZE * int(rng.integers(0, 350_000))
    transform = Affine(PIXEL_SIZE, 0.0, x0, 0.0, -PIXEL_SIZE, y0)
    return SynthScene(image, labels, transform, CRS.from_string(CRS_CODE))


def scene_names(seed: int, index: int) -> tuple[str, str]:
    return f"scene_{seed}_{index:03d}.tif", f"labels_{seed}_{index:03d}.tif"


def encode_geotiff(array: np.ndarray, transform: Affine, crs: CRS, nodata: int, descriptions: list[str] | None = None) -> bytes:
    """A tiled, deflate-compressed GeoTIFF as bytes (no timestamps: same input, same bytes)."""
    from rasterio.io import MemoryFile

    data = array if array.ndim == 3 else array[None]
    profile = {
        "driver": "GTiff",
        "height": data.shape[1],
        "width": data.shape[2],
        "count": data.shape[0],
        "dtype": data.dtype.name,
        "crs": crs,
        "transform": transform,
        "nodata": nodata,
        "tiled": True,
        "blockxsize": 256,
        "blockysize": 256,
        "compress": "deflate",
    }
    with MemoryFile() as mem:
        with mem.open(**profile) as dst:
            dst.write(data)
            if descriptions:
                for i, name in enumerate(descriptions, start=1):
                    dst.set_band_description(i, name)
        return bytes(mem.read())


def write_scenes(output: str, scenes: int, seed: int, size: int = 512) -> list[tuple[str, str]]:
    """Write ``scenes`` scene/label pairs under ``output`` (any fsspec URL)."""
    out = output.rstrip("/")
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    written = []
    for i in range(scenes):
        scene = synth_scene(seed, size, i)
        image_name, label_name = scene_names(seed, i)
        pairs = (
            (image_name, encode_geotiff(scene.image, scene.transform, scene.crs, 0, BANDS)),
            (label_name, encode_geotiff(scene.labels, scene.transform, scene.crs, NODATA_LABEL)),
        )
        for name, payload in pairs:
            with fsspec.open(f"{out}/{name}", "wb") as f:
                f.write(payload)
        written.append((f"{out}/{image_name}", f"{out}/{label_name}"))
    return written


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tessera synth", description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", required=True, help="folder URL (local path, file://, gs://)")
    parser.add_argument("--scenes", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--size", type=int, default=512, help="scene side in pixels")
    args = parser.parse_args(argv)
    if args.scenes < 1 or args.size < 32:
        parser.error("--scenes must be >= 1 and --size >= 32")
    for image_url, label_url in write_scenes(args.output, args.scenes, args.seed, args.size):
        print(f"{image_url}\t{label_url}")
    return 0

