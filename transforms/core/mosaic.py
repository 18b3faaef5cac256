"""Where per-scene outputs are put together: the target grid, the mosaic tile plan and
the overlap policies.

The target grid is a fixed tiling of one CRS: square pixels of ``resolution`` and square
mosaic tiles of ``tile_size`` pixels anchored on ``origin``. Tile ``(x, y)`` covers
``[ox + x*S, ox + (x+1)*S) x [oy + y*S, oy + (y+1)*S)`` with ``S = tile_size*resolution``
(``y`` grows northwards), so a tile's extent never depends on which scenes exist: adding
a scene touches only the tiles under it.

When every input shares one pixel grid (same CRS, resolution and sub-pixel phase) the
target grid is that grid and tiles are assembled by copying windows (no resampling);
otherwise the caller names a CRS and resolution and scenes are warped (nearest, the only
honest resampling for classes).

Planning turns a scene into small ``Contribution`` records (tile key, scene, windows):
that is all a shuffle has to carry. Building a tile reads only those windows.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.vrt import WarpedVRT
from rasterio.warp import transform_bounds
from rasterio.windows import Window

from transforms.core.errors import ConfigError
from transforms.core.rasterio_io import GDAL_ENV, open_dataset

NODATA = 255
# Two grids are "the same" when origins differ by less than this fraction of a pixel.
PHASE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class ClassEntry:
    """One class of a classes raster: pixel value, name and ``#rrggbb`` colour."""

    value: int
    name: str
    colour: str

    @property
    def rgba(self) -> tuple[int, int, int, int]:
        c = self.colour.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16), 255


def colormap_for(classes: Sequence[ClassEntry]) -> dict[int, tuple[int, int, int, int]]:
    """GDAL colour table: class colours, transparent no-data."""
    table = {c.value: c.rgba for c in classes}
    table[NODATA] = (0, 0, 0, 0)
    return table


@dataclass(frozen=True)
class AssetIdentity:
    """What makes an asset's content unique without reading it: href, size, version."""

    href: str
    size: int
    version: str  # GCS generation, else mtime

    def as_list(self) -> list[Any]:
        return [self.href, self.size, self.version]


@dataclass(frozen=True)
class SceneOutput:
    """One per-scene output found through its STAC Item; small and picklable."""

    item_id: str
    item_url: str
    product: str
    datetime: str
    classes_url: str
    crs_wkt: str
    transform: tuple[float, float, float, float, float, float]
    width: int
    height: int
    classes_identity: AssetIdentity
    confidence_url: str | None = None
    confidence_identity: AssetIdentity | None = None
    classes: tuple[ClassEntry, ...] = field(default=(), compare=False)

    @property
    def affine(self) -> Affine:
        return Affine(*self.transform)

    @property
    def bounds(self) -> tuple[float, float, float, float]:
        """(left, bottom, right, top) in the scene's CRS (north-up scenes)."""
        t = self.affine
        xs = (t.c, t.c + t.a * self.width)
        ys = (t.f, t.f + t.e * self.height)
        return min(xs), min(ys), max(xs), max(ys)


@dataclass(frozen=True, order=True)
class MosaicTileKey:
    """A mosaic tile's position on the target grid; ``y`` grows northwards."""

    x: int
    y: int

    def __str__(self) -> str:
        return f"x{self.x}_y{self.y}"


@dataclass(frozen=True)
class TargetGrid:
    """A fixed tiling of ``crs`` into ``tile_size``-pixel tiles of ``resolution`` units."""

    crs_wkt: str
    resolution: float
    tile_size: int
    origin_x: float = 0.0
    origin_y: float = 0.0

    def __post_init__(self) -> None:
        if not (self.resolution > 0 and math.isfinite(self.resolution)):
            raise ConfigError(f"mosaic resolution must be a positive number, got {self.resolution}")
        if self.tile_size < 16:
            raise ConfigError(f"mosaic tile size must be >= 16 pixels, got {self.tile_size}")

    @property
    def crs(self) -> CRS:
        return CRS.from_wkt(self.crs_wkt)

    @property
    def span(self) -> float:
        """Side of one mosaic tile in CRS units."""
        return self.tile_size * self.resolution

    def tile_transform(self, key: MosaicTileKey) -> Affine:
        left = self.origin_x + key.x * self.span
        top = self.origin_y + (key.y + 1) * self.span
        return Affine(self.resolution, 0.0, left, 0.0, -self.resolution, top)

    def tile_bounds(self, key: MosaicTileKey) -> tuple[float, float, float, float]:
        left = self.origin_x + key.x * self.span
        bottom = self.origin_y + key.y * self.span
        return left, bottom, left + self.span, bottom + self.span

    def tiles_for_bounds(self, bounds: tuple[float, float, float, float]) -> Iterator[MosaicTileKey]:
        """Tiles whose interior meets ``bounds`` (touching an edge is not enough)."""
        left, bottom, right, top = bounds
        eps = PHASE_TOLERANCE * self.resolution
        x0 = math.floor((left - self.origin_x + eps) / self.span)
        x1 = math.ceil((right - self.origin_x - eps) / self.span)
        y0 = math.floor((bottom - self.origin_y + eps) / self.span)
        y1 = math.ceil((top - self.origin_y - eps) / self.span)
        for y in range(y1 - 1, y0 - 1, -1):
            for x in range(x0, x1):
                yield MosaicTileKey(x, y)

    def is_aligned(self, scene: SceneOutput) -> bool:
        """True when the scene's pixels are pixels of this grid (copy, no resampling)."""
        a, b, c, d, e, f = scene.transform
        if b != 0 or d != 0:
            return False
        res = self.resolution
        if abs(a - res) > PHASE_TOLERANCE * res or abs(-e - res) > PHASE_TOLERANCE * res:
            return False
        if not _same_crs(scene.crs_wkt, self.crs_wkt):
            return False
        return _is_whole((c - self.origin_x) / res) and _is_whole((f - self.origin_y) / res)

    def describe(self) -> dict[str, Any]:
        crs = self.crs
        epsg = crs.to_epsg()
        return {
            "crs": f"EPSG:{epsg}" if epsg else crs.to_wkt(),
            "resolution": self.resolution,
            "tile_size": self.tile_size,
            "origin": [self.origin_x, self.origin_y],
        }


def _is_whole(value: float) -> bool:
    return abs(value - round(value)) < PHASE_TOLERANCE


def _same_crs(a_wkt: str, b_wkt: str) -> bool:
    return a_wkt == b_wkt or CRS.from_wkt(a_wkt) == CRS.from_wkt(b_wkt)


def _phase(value: float, res: float) -> float:
    """``value`` modulo ``res``, snapped so that near-whole multiples give 0."""
    phase = math.fmod(value, res)
    if phase < 0:
        phase += res
    return 0.0 if min(phase, res - phase) < PHASE_TOLERANCE * res else phase


def resolve_grid(
    scenes: Sequence[SceneOutput],
    *,
    crs: str | None = None,
    resolution: float | None = None,
    tile_size: int = 1024,
) -> TargetGrid:
    """The target grid: the inputs' own pixel grid when they share one, else the given
    CRS and resolution (the origin then sits at 0, 0 of that CRS)."""
    if not scenes:
        raise ConfigError("no per-scene outputs to mosaic; check --catalog points at `tessera infer` output")
    first = scenes[0]
    a, b, _, d, e, _ = first.transform
    shared: TargetGrid | None = None
    if b == 0 and d == 0 and abs(a + e) <= PHASE_TOLERANCE * abs(a):
        candidate = TargetGrid(
            crs_wkt=first.crs_wkt,
            resolution=a,
            tile_size=tile_size,
            origin_x=_phase(first.transform[2], a),
            origin_y=_phase(first.transform[5], a),
        )
        if all(candidate.is_aligned(s) for s in scenes):
            shared = candidate
    if crs is None and resolution is None:
        if shared is None:
            raise ConfigError(
                "the per-scene outputs do not share one pixel grid (CRS, square resolution and "
                "origin); pass --crs EPSG:... and --resolution R to reproject onto a common grid"
            )
        return shared
    try:
        target_crs = CRS.from_user_input(crs) if crs else CRS.from_wkt(first.crs_wkt)
    except Exception as exc:  # rasterio raises CRSError with GDAL's wording
        raise ConfigError(f"--crs {crs!r} is not a CRS rasterio understands (try EPSG:3857): {exc}") from exc
    res = float(resolution) if resolution is not None else (shared.resolution if shared else abs(a))
    if shared is not None and CRS.from_wkt(shared.crs_wkt) == target_crs and abs(res - shared.resolution) <= PHASE_TOLERANCE * res:
        return shared  # the requested grid is the inputs' grid: keep their phase, no resampling
    return TargetGrid(crs_wkt=target_crs.to_wkt(), resolution=res, tile_size=tile_size)


@dataclass(frozen=True)
class Contribution:
    """What a shuffle carries: one scene's share of one mosaic tile, never pixels.

    ``src`` is the scene window (col_off, row_off, width, height) when the scene is on
    the grid (a copy), ``None`` when it must be warped; ``dst`` is the part of the tile
    (same layout) the scene can reach.
    """

    tile: MosaicTileKey
    scene: SceneOutput
    dst: tuple[int, int, int, int]
    src: tuple[int, int, int, int] | None


def plan_contributions(scene: SceneOutput, grid: TargetGrid) -> list[Contribution]:
    """The mosaic tiles a scene touches, with the windows to read for each."""
    out: list[Contribution] = []
    if grid.is_aligned(scene):
        for key in grid.tiles_for_bounds(scene.bounds):
            t = grid.tile_transform(key)
            # the scene's pixel (0, 0) sits at this tile pixel:
            col0 = round((scene.transform[2] - t.c) / grid.resolution)
            row0 = round((t.f - scene.transform[5]) / grid.resolution)
            c0, c1 = max(col0, 0), min(col0 + scene.width, grid.tile_size)
            r0, r1 = max(row0, 0), min(row0 + scene.height, grid.tile_size)
            if c1 <= c0 or r1 <= r0:
                continue
            dst = (c0, r0, c1 - c0, r1 - r0)
            src = (c0 - col0, r0 - row0, c1 - c0, r1 - r0)
            out.append(Contribution(key, scene, dst, src))
        return out
    bounds = transform_bounds(CRS.from_wkt(scene.crs_wkt), grid.crs, *scene.bounds, densify_pts=21)
    for key in grid.tiles_for_bounds(bounds):
        left, bottom, right, top = grid.tile_bounds(key)
        res = grid.resolution
        c0 = max(0, math.floor((bounds[0] - left) / res))
        c1 = min(grid.tile_size, math.ceil((bounds[2] - left) / res))
        r0 = max(0, math.floor((top - bounds[3]) / res))
        r1 = min(grid.tile_size, math.ceil((top - bounds[1]) / res))
        if c1 > c0 and r1 > r0:
            out.append(Contribution(key, scene, (c0, r0, c1 - c0, r1 - r0), None))
    return out


# --- overlap policies: small strategy classes with one feed() method, picked by name ---


class MosaicPolicy(ABC):
    """Resolves overlaps for one mosaic tile. Scenes are fed in ``order()``; each call
    to ``feed()`` offers one scene's classes (and confidence, if the policy needs it)
    for the ``dst`` window of the tile."""

    name: ClassVar[str]
    needs_confidence: ClassVar[bool] = False

    def __init__(self, size: int, priority: Sequence[str] = ()) -> None:
        self.classes = np.full((size, size), NODATA, dtype=np.uint8)
        self.priority = tuple(priority)

    def order(self, contributions: Sequence[Contribution]) -> list[Contribution]:
        """Latest acquisition first; ties broken by Item id so the result is stable."""
        by_id = sorted(contributions, key=lambda c: c.scene.item_id)
        return sorted(by_id, key=lambda c: c.scene.datetime, reverse=True)

    @abstractmethod
    def feed(self, dst: tuple[int, int, int, int], classes: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        """Merge one scene into the tile; return the bool mask of pixels it now owns."""

    @property
    def is_done(self) -> bool:
        """No later scene can change the tile (lets the builder skip reads)."""
        return False

    @staticmethod
    def _view(array: np.ndarray, dst: tuple[int, int, int, int]) -> np.ndarray:
        c, r, w, h = dst
        return array[r : r + h, c : c + w]


class FirstValidPolicy(MosaicPolicy):
    """The first scene (in ``order()``) with a valid pixel wins it."""

    def feed(self, dst: tuple[int, int, int, int], classes: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        view = self._view(self.classes, dst)
        take = (view == NODATA) & (classes != NODATA)
        view[take] = classes[take]
        return take

    @property
    def is_done(self) -> bool:
        return not bool((self.classes == NODATA).any())


class LatestPolicy(FirstValidPolicy):
    """The most recent acquisition (Item ``datetime``) wins."""

    name = "latest"


class PriorityPolicy(FirstValidPolicy):
    """An explicit order of scene ids wins; unlisted scenes follow, latest first."""

    name = "priority"

    def order(self, contributions: Sequence[Contribution]) -> list[Contribution]:
        rank = {scene_id: i for i, scene_id in enumerate(self.priority)}
        latest_first = super().order(contributions)
        return sorted(latest_first, key=lambda c: rank.get(c.scene.item_id, len(rank)))


class ConfidencePolicy(MosaicPolicy):
    """The scene most confident about the pixel (``confidence`` asset) wins; ties go to
    the latest acquisition."""

    name = "confidence"
    needs_confidence = True

    def __init__(self, size: int, priority: Sequence[str] = ()) -> None:
        super().__init__(size, priority)
        self.best = np.full((size, size), -1, dtype=np.int16)

    def feed(self, dst: tuple[int, int, int, int], classes: np.ndarray, confidence: np.ndarray | None) -> np.ndarray:
        if confidence is None:
            raise ConfigError("policy 'confidence' needs the `confidence` asset of every scene")
        view, best = self._view(self.classes, dst), self._view(self.best, dst)
        score = np.where((classes != NODATA) & (confidence != NODATA), confidence.astype(np.int16), -1)
        take = score > best
        view[take] = classes[take]
        best[take] = score[take]
        return take


POLICIES: dict[str, type[MosaicPolicy]] = {
    p.name: p for p in (LatestPolicy, ConfidencePolicy, PriorityPolicy)
}


def policy_class(name: str) -> type[MosaicPolicy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise ConfigError(f"unknown mosaic policy {name!r}; choose one of {', '.join(POLICIES)}") from None


# --- building one tile ------------------------------------------------------------


@dataclass
class TileResult:
    """A built mosaic tile: the classes array and who contributed pixels."""

    key: MosaicTileKey
    classes: np.ndarray
    contributors: list[str]
    reads: int


def build_tile(
    key: MosaicTileKey,
    contributions: Sequence[Contribution],
    grid: TargetGrid,
    policy: str,
    priority: Sequence[str] = (),
) -> TileResult:
    """Assemble one mosaic tile from its contributions (reads only their windows)."""
    strategy = policy_class(policy)(grid.tile_size, priority)
    contributors: list[str] = []
    reads = 0
    with rasterio.Env(**GDAL_ENV):
        for contribution in strategy.order(contributions):
            if strategy.is_done:
                break
            scene = contribution.scene
            classes = _read_window(scene.classes_url, contribution, grid, key)
            confidence = None
            if strategy.needs_confidence:
                if scene.confidence_url is None:
                    raise ConfigError(
                        f"policy 'confidence' needs a `confidence` asset but Item {scene.item_url} has none; "
                        "use --policy latest or rerun `tessera infer`"
                    )
                confidence = _read_window(scene.confidence_url, contribution, grid, key)
            reads += 1
            if strategy.feed(contribution.dst, classes, confidence).any():
                contributors.append(scene.item_id)
    return TileResult(key, strategy.classes, sorted(contributors), reads)


def _read_window(url: str, contribution: Contribution, grid: TargetGrid, key: MosaicTileKey) -> np.ndarray:
    c, r, w, h = contribution.dst
    with open_dataset(url) as ds:
        if contribution.src is not None:
            sc, sr, sw, sh = contribution.src
            data = ds.read(1, window=Window(sc, sr, sw, sh))
            if ds.nodata is not None and ds.nodata != NODATA:
                data = np.where(data == ds.nodata, NODATA, data).astype(np.uint8)
            return np.asarray(data, dtype=np.uint8)
        with WarpedVRT(
            ds,
            crs=grid.crs,
            transform=grid.tile_transform(key),
            width=grid.tile_size,
            height=grid.tile_size,
            resampling=Resampling.nearest,
            nodata=NODATA,
        ) as vrt:
            return np.asarray(vrt.read(1, window=Window(c, r, w, h)), dtype=np.uint8)

