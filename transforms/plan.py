"""Where tiles get cut: scenes are checked and planned into tile tasks (no pixels)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics

from transforms.core.errors import SceneError
from transforms.core.grid import TileGrid, TileIndex, round_up
from transforms.core.outputs import TMP_DIR, SceneJob, join
from transforms.core.products import ProductProfile
from transforms.core.rasterio_io import inspect_scene

FAILED = "failed"


@dataclass(frozen=True)
class TileTask:
    """One tile of one scene job: the unit of parallel work. Small and picklable."""

    job: SceneJob
    index: TileIndex


@dataclass(frozen=True)
class PlanSettings:
    output: str
    model_path: str
    receptive_field: int
    alignment: int
    model_bands: int
    tile_size: int
    max_pixels: int
    run_token: str  # deterministic per job: reruns and retries write the same temp names


class _PlanScene(beam.DoFn):
    def __init__(self, settings: PlanSettings) -> None:
        self.settings = settings
        self.planned = Metrics.counter("tessera", "scenes_planned")
        self.rejected = Metrics.counter("tessera", "scenes_rejected")

    def process(self, element: tuple[str, ProductProfile]) -> Iterator[object]:
        url, profile = element
        s = self.settings
        try:
            bands = profile.band_indexes(s.model_bands)
            info = inspect_scene(url, bands_required=max(bands), max_pixels=s.max_pixels)
        except SceneError as exc:
            self.rejected.inc()
            yield pvalue.TaggedOutput(FAILED, (f"{profile.name}/{_safe_id(url)}", url, str(exc)))
            return
        # A scene smaller than one tile gets a tile just big enough (still aligned): the
        # output is the same for any aligned tile size, the padding work is not.
        tile = min(s.tile_size, round_up(max(info.height, info.width), s.alignment))
        grid = TileGrid.for_model(info.height, info.width, tile, s.receptive_field, s.alignment)
        job = SceneJob(
            scene=info,
            product=profile.name,
            product_title=profile.title,
            grid=grid,
            bands=tuple(bands),
            scale=profile.scale,
            model_path=s.model_path,
            tmp_url=join(s.output, TMP_DIR, s.run_token, profile.name, info.scene_id),
            output=s.output,
        )
        self.planned.inc()
        yield job


def _safe_id(url: str) -> str:
    from transforms.core.rasterio_io import scene_id_for

    return scene_id_for(url)


@dataclass
class PlanScenes(beam.PTransform):
    """``(url, profile)`` -> ``SceneJob``; unusable scenes go to the ``failed`` output
    as ``(job key, url, reason)``."""

    settings: PlanSettings

    def expand(self, pcoll: beam.PCollection) -> pvalue.DoOutputsTuple:
        return pcoll | beam.ParDo(_PlanScene(self.settings)).with_outputs(FAILED, main="jobs")


def plan_tiles(job: SceneJob) -> Iterator[TileTask]:
    for index in job.grid.indices():
        yield TileTask(job, index)


@dataclass
class PlanTiles(beam.PTransform):
    """``SceneJob`` -> ``TileTask`` for every tile, redistributed across workers.

    The reshuffle moves tasks (keys and small records), never pixels.
    """

    def expand(self, jobs: beam.PCollection) -> beam.PCollection:
        return jobs | "Tiles" >> beam.FlatMap(plan_tiles) | "Spread" >> beam.Reshuffle()
