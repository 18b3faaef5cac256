"""The mosaic steps as Beam PTransforms; each only wires a pure function of
``transforms.core.mosaic`` / ``transforms.core.mosaic_io``.

    scenes -> PlanMosaicTiles -> GroupByKey -> BuildMosaicTiles -> WriteMosaicCollection

The shuffle carries ``(MosaicTileKey, Contribution)`` records (tile key, scene hrefs,
windows), never pixels; the unit of parallel work is one mosaic tile.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.core.errors import ConfigError
from transforms.core.mosaic import (
    ClassEntry,
    Contribution,
    MosaicTileKey,
    SceneOutput,
    TargetGrid,
    build_tile,
    plan_contributions,
    policy_class,
)
from transforms.core.mosaic_io import tile_is_current, tile_manifest
from transforms.core.mosaic_outputs import (
    TileRecord,
    record_for_current_tile,
    write_collection,
    write_tile,
)

log = logging.getLogger(__name__)
NAMESPACE = "tessera.mosaic"


def keyed_contributions(scene: SceneOutput, grid: TargetGrid) -> Iterator[tuple[tuple[int, int], Contribution]]:
    """Shuffle key = the tile's ``(x, y)`` ints: Beam has a deterministic coder for them."""
    for contribution in plan_contributions(scene, grid):
        yield (contribution.tile.x, contribution.tile.y), contribution


@dataclasses.dataclass(eq=False)
class PlanMosaicTiles(beam.PTransform):
    """PCollection[SceneOutput] -> PCollection[((x, y), Contribution)]."""

    grid: TargetGrid

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, scenes: beam.PCollection) -> beam.PCollection:
        return scenes | "Contributions" >> beam.FlatMap(keyed_contributions, self.grid)


@dataclasses.dataclass(frozen=True)
class MosaicSpec:
    """Everything a worker needs to build tiles of one product; picklable."""

    output: str
    product: str
    grid: TargetGrid
    policy: str
    priority: tuple[str, ...]
    class_table: tuple[ClassEntry, ...]

    @property
    def collection_url(self) -> str:
        return f"{self.output.rstrip('/')}/{self.product}-mosaic"


class BuildTileFn(beam.DoFn):
    """(key, contributions) -> TileRecord; skips tiles whose manifest is unchanged."""

    def __init__(self, spec: MosaicSpec) -> None:
        self.spec = spec
        self.written = Metrics.counter(NAMESPACE, "tiles_written")
        self.unchanged = Metrics.counter(NAMESPACE, "tiles_unchanged")
        self.reads = Metrics.counter(NAMESPACE, "scene_windows_read")
        self.files = Metrics.counter(NAMESPACE, "files_written")
        self.latency = Metrics.distribution(NAMESPACE, "tile_build_ms")

    def setup(self) -> None:
        from transforms.core.postprocess import parse_config
        from transforms.core.products import load_profile

        try:
            self.profile: Any = load_profile(self.spec.product)
            self.postprocess = parse_config(self.profile.postprocess, self.profile.name).model_dump()
        except ConfigError as exc:
            log.warning("no product profile %r (%s); mosaic tiles get no post-processing", self.spec.product, exc)
            self.profile, self.postprocess = None, {}

    def process(self, element: tuple[tuple[int, int], Iterable[Contribution]]) -> Iterator[TileRecord]:
        key, contributions = MosaicTileKey(*element[0]), list(element[1])
        spec = self.spec
        manifest = tile_manifest(key, contributions, spec.grid, spec.policy, spec.priority, self.postprocess,
                                 policy_class(spec.policy).needs_confidence)
        if tile_is_current(spec.collection_url, key, manifest):
            self.unchanged.inc()
            yield record_for_current_tile(spec.collection_url, key, spec.grid)
            return
        start = time.perf_counter()
        result = build_tile(key, contributions, spec.grid, spec.policy, spec.priority)
        record = write_tile(
            key, result.classes, grid=spec.grid, collection_url=spec.collection_url, product=spec.product,
            class_table=spec.class_table, manifest=manifest, contributions=contributions,
            contributors=result.contributors, profile=self.profile,
        )
        self.reads.inc(result.reads)
        self.files.inc(record.files_written)
        self.written.inc()
        self.latency.update(int((time.perf_counter() - start) * 1000))
        yield record


@dataclasses.dataclass(eq=False)
class BuildMosaicTiles(beam.PTransform):
    """PCollection[((x, y), Contribution)] -> PCollection[TileRecord]."""

    spec: MosaicSpec

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, keyed: beam.PCollection) -> beam.PCollection:
        return (
            keyed
            | "GroupByTile" >> beam.GroupByKey()
            | "BuildTile" >> beam.ParDo(BuildTileFn(self.spec))
        )


def write_collection_for(records: Sequence[TileRecord], spec: MosaicSpec) -> dict[str, Any]:
    changed = write_collection(spec.output, spec.product, list(records), grid=spec.grid,
                               policy=spec.policy, class_table=spec.class_table)
    return {"product": spec.product, "tiles": len(records), **changed}


@dataclasses.dataclass(eq=False)
class WriteMosaicCollection(beam.PTransform):
    """PCollection[TileRecord] -> one summary dict, after the Collection + VRT are written."""

    spec: MosaicSpec

    def __post_init__(self) -> None:
        super().__init__()

    def expand(self, records: beam.PCollection) -> beam.PCollection:
        return (
            records
            | "AllTiles" >> beam.combiners.ToList()
            | "WriteCollection" >> beam.Map(write_collection_for, self.spec)
        )
