"""``tessera mosaic``: per-scene outputs -> mosaic tiles on a fixed grid + a STAC Collection.

    tessera mosaic --catalog OUT --output OUT [--policy latest|confidence|priority]
                   [--priority SCENE_ID ...] [--crs EPSG:... --resolution R] [--tile-size N]
                   [Beam options, e.g. --runner DataflowRunner ...]

The catalog walk and the grid choice happen here, on the launcher (they need every
Item's grid); tiles are planned, built and written on the workers, one mosaic tile per
unit of work. Only tiles whose inputs changed are rebuilt (see the tile manifests).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from collections import defaultdict
from dataclasses import asdict, dataclass, field
from typing import Any

from transforms.core.errors import ConfigError
from transforms.core.mosaic import POLICIES, SceneOutput, policy_class, resolve_grid
from transforms.core.mosaic_io import discover_scene_outputs

log = logging.getLogger(__name__)
DEFAULT_TILE_SIZE = 1024


@dataclass
class MosaicReport:
    scenes: int
    products: list[str]
    collections: list[str]
    tiles: int
    tiles_written: int | None = None
    tiles_unchanged: int | None = None
    grids: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> str:
        return json.dumps(asdict(self), indent=2)


def run_mosaic(
    catalog: str,
    output: str,
    *,
    policy: str = "latest",
    priority: list[str] | None = None,
    crs: str | None = None,
    resolution: float | None = None,
    tile_size: int | None = None,
    products: list[str] | None = None,
    beam_args: list[str] | None = None,
) -> MosaicReport:
    import apache_beam as beam
    from apache_beam.metrics.metric import MetricsFilter

    from beam_pipelines.runner import make_pipeline, pipeline_options
    from transforms.mosaic import (
        NAMESPACE,
        BuildMosaicTiles,
        MosaicSpec,
        PlanMosaicTiles,
        WriteMosaicCollection,
        keyed_contributions,
    )

    policy_class(policy)  # fail early on a bad name
    if policy == "priority" and not priority:
        raise ConfigError("--policy priority needs --priority SCENE_ID ... (highest priority first)")
    scenes = discover_scene_outputs(catalog)
    by_product: dict[str, list[SceneOutput]] = defaultdict(list)
    for scene in scenes:
        if products is None or scene.product in products:
            by_product[scene.product].append(scene)
    if not by_product:
        raise ConfigError(f"no per-scene outputs under {catalog}" + (f" for products {products}" if products else ""))

    specs = []
    planned = 0
    for product, group in sorted(by_product.items()):
        grid = resolve_grid(group, crs=crs, resolution=resolution, tile_size=tile_size or DEFAULT_TILE_SIZE)
        table = next((s.classes for s in group if s.classes), ())
        specs.append((MosaicSpec(output, product, grid, policy, tuple(priority or ()), table), group))
        planned += len({key for s in group for key, _ in keyed_contributions(s, grid)})

    pipeline = make_pipeline(pipeline_options(beam_args))
    for spec, group in specs:
        _ = (
            pipeline
            | f"Scenes[{spec.product}]" >> beam.Create(group)
            | f"PlanMosaicTiles[{spec.product}]" >> PlanMosaicTiles(spec.grid)
            | f"BuildMosaicTiles[{spec.product}]" >> BuildMosaicTiles(spec)
            | f"WriteMosaicCollection[{spec.product}]" >> WriteMosaicCollection(spec)
        )
    result = pipeline.run()
    result.wait_until_finish()

    report = MosaicReport(
        scenes=sum(len(g) for _, g in specs),
        products=[s.product for s, _ in specs],
        collections=[f"{s.collection_url}/collection.json" for s, _ in specs],
        tiles=planned,
        grids={s.product: s.grid.describe() for s, _ in specs},
    )
    try:
        counters = result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
        totals: dict[str, int] = defaultdict(int)
        for c in counters:
            totals[c.key.metric.name] += int(c.committed or c.attempted or 0)
        report.tiles_written = totals.get("tiles_written", 0)
        report.tiles_unchanged = totals.get("tiles_unchanged", 0)
    except Exception:  # some runners do not report metrics back to the launcher
        log.info("runner returned no metrics; report without tile counts")
    return report


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="tessera mosaic",
        description="Assemble per-scene outputs (found through their STAC Items) into mosaic tiles "
        "on a fixed grid: one COG + STAC Item per tile, a Collection and a VRT. "
        "Other options go to Beam (e.g. --runner DataflowRunner --project P --region R).",
    )
    parser.add_argument("--catalog", required=True, help="STAC catalog of `tessera infer` outputs (URL or path)")
    parser.add_argument("--output", required=True, help="where {product}-mosaic/ goes (usually the same root)")
    parser.add_argument("--policy", default="latest", choices=sorted(POLICIES), help="who wins where scenes overlap")
    parser.add_argument("--priority", nargs="+", default=None, metavar="SCENE_ID",
                        help="scene ids (Item ids), highest priority first, for --policy priority")
    parser.add_argument("--crs", default=None, help="target CRS (e.g. EPSG:2154); default: the inputs' own grid")
    parser.add_argument("--resolution", type=float, default=None, help="target pixel size in CRS units")
    parser.add_argument("--tile-size", type=int, default=DEFAULT_TILE_SIZE, help="mosaic tile side in pixels")
    parser.add_argument("--product", action="append", default=None, help="only these products (repeatable)")
    return parser.parse_known_args(argv)


def main(argv: list[str] | None = None) -> int:
    args, beam_args = parse_args(list(sys.argv[1:] if argv is None else argv))
    report = run_mosaic(
        args.catalog, args.output, policy=args.policy, priority=args.priority, crs=args.crs,
        resolution=args.resolution, tile_size=args.tile_size, products=args.product, beam_args=beam_args,
    )
    print(report.to_json())
    return 0
