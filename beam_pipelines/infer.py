"""``tessera infer``: scenes in, seamless COGs + STAC Items out.

    plan scenes -> plan tiles -> read windows -> RunInference -> crop halo
                -> write tiles -> finalise scenes -> update catalog

Beam's own options (``--runner``, ``--project``, ``--temp_location``, ...) pass
through untouched; DirectRunner is the default.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from dataclasses import dataclass, field
from typing import Any

import apache_beam as beam

from beam_pipelines.runner import make_pipeline, pipeline_options
from models.bundle import read_metadata, resolve_model_path
from transforms.core.errors import ConfigError
from transforms.core.outputs import TMP_DIR, TileRecord, join
from transforms.core.products import load_profile
from transforms.core.rasterio_io import DEFAULT_MAX_PIXELS
from transforms.inference import RunModel
from transforms.plan import FAILED, PlanScenes, PlanSettings, PlanTiles
from transforms.read import SKIPPED, TILE_ARRAY, ReadTiles
from transforms.write import FinaliseScenes, UpdateCatalog, WriteTiles, crop_halo


@dataclass
class InferReport:
    succeeded: dict[str, str] = field(default_factory=dict)  # job key -> Item URL
    failed: dict[str, str] = field(default_factory=dict)  # job key -> "url: reason"
    counters: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not self.failed

    def to_json(self) -> str:
        return json.dumps(
            {"succeeded": self.succeeded, "failed": self.failed, "counters": self.counters,
             "seconds": round(self.seconds, 3)},
            indent=2, sort_keys=True,
        )


def _handler(inference: str, model_path: str, kserve_url: str | None, batch_size: int,
             meta: Any) -> Any:
    if inference == "local":
        from models.handlers import BundleModelHandler

        return BundleModelHandler(model_path, max_batch_size=batch_size, planes=True)
    if inference == "kserve":
        if not kserve_url:
            raise ConfigError("--inference kserve needs --kserve-url http://HOST:PORT")
        from models.kserve_handler import KServeModelHandler

        # the server must serve this bundle's contract: checked at load time, naming the URL
        return KServeModelHandler(kserve_url, meta.name, max_batch_size=batch_size, metadata=meta, planes=True)
    raise ConfigError(f"--inference must be 'local' or 'kserve', got {inference!r}")


def run_token(scenes: list[str], output: str, product: str, meta_version: str, tile: int) -> str:
    """Deterministic per job, so a replayed or retried job stages to the same names."""
    digest = hashlib.sha256(json.dumps([sorted(scenes), output, product, meta_version, tile]).encode())
    return digest.hexdigest()[:16]


def build_pipeline(
    p: beam.Pipeline,
    scenes: list[str],
    output: str,
    *,
    model: str | None = None,
    product: str | None = None,
    tile_size: int | None = None,
    bands: list[int] | None = None,
    scale: float | None = None,
    inference: str = "local",
    kserve_url: str | None = None,
    batch_size: int = 8,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    progress: bool = False,
) -> beam.PCollection:
    """Wire the inference graph onto ``p``; returns the per-scene results."""
    if not scenes:
        raise ConfigError("give at least one scene: --scenes URL [URL ...]")
    profile = load_profile(product).with_overrides(bands=bands, scale=scale, model=model)
    model_path = resolve_model_path(profile.model)
    meta = read_metadata(model_path)
    tile = tile_size or meta.tile_size
    if tile % meta.alignment:
        raise ConfigError(
            f"--tile-size {tile} must be a multiple of the model's alignment {meta.alignment}"
        )
    profile.band_indexes(len(meta.bands))  # fail early, before any worker starts
    settings = PlanSettings(
        output=output.rstrip("/"),
        model_path=model_path,
        receptive_field=meta.receptive_field,
        alignment=meta.alignment,
        model_bands=len(meta.bands),
        tile_size=tile,
        max_pixels=max_pixels,
        run_token=run_token(scenes, output, profile.name, meta.version, tile),
    )
    handler = _handler(inference, model_path, kserve_url, batch_size, meta)
    postprocess = _postprocess_factory(profile) if profile.postprocess else None

    planned = (
        p
        | "Scenes" >> beam.Create([(url, profile) for url in dict.fromkeys(scenes)])
        | "PlanScenes" >> PlanScenes(settings)
    )
    jobs = planned.jobs
    read = jobs | "PlanTiles" >> PlanTiles() | "ReadTiles" >> ReadTiles()
    predicted, inference_failed = read.tiles | "RunInference" >> RunModel(handler)
    written = (
        predicted
        | "CropHalo" >> beam.Map(crop_halo).with_output_types(TILE_ARRAY)
        | "WriteTiles" >> WriteTiles(progress=progress)
    )
    skipped = read[SKIPPED] | "NoDataTiles" >> beam.Map(lambda t: (t.job.key, TileRecord(t.index, False)))
    failures = (
        (planned[FAILED], read[FAILED], inference_failed)
        | "Failures" >> beam.Flatten()
        | "FailureByScene" >> beam.Map(lambda f: (f[0], (f[1], f[2])))
    )
    results = {
        "jobs": jobs | "JobByScene" >> beam.Map(lambda j: (j.key, j)),
        "tiles": (written, skipped) | "TileRecords" >> beam.Flatten(),
        "failed": failures,
    } | "FinaliseScenes" >> FinaliseScenes(meta.model_dump(mode="json"), postprocess)
    staging = join(settings.output, TMP_DIR, settings.run_token)
    return results | "UpdateCatalog" >> UpdateCatalog(settings.output, staging)


def _postprocess_factory(profile: Any) -> Any:
    """Per-scene post-processing of the product profile (urban footprints, areas, ...)."""

    def for_job(job: Any) -> Any:
        from transforms.core import postprocess

        meta = read_metadata(job.model_path)
        return lambda classes_path, workdir, areas: postprocess.apply(
            profile, classes_path, workdir, meta.class_names, areas
        )

    return for_job


def run_infer(
    scenes: list[str],
    output: str,
    *,
    beam_args: list[str] | None = None,
    **kwargs: Any,
) -> InferReport:
    """Build and run the pipeline; returns what succeeded and what failed, per scene."""
    options = pipeline_options(beam_args, save_main_session=False)
    start = time.perf_counter()
    p = make_pipeline(options)
    build_pipeline(p, scenes, output, **kwargs)
    result = p.run()
    result.wait_until_finish()
    report = _report(result)
    report.seconds = time.perf_counter() - start
    return report


def _report(result: Any) -> InferReport:
    report = InferReport()
    try:
        metrics = result.metrics().query()
    except (NotImplementedError, AttributeError):
        return report
    for counter in metrics.get("counters", []):
        if counter.key.metric.namespace == "tessera":
            name = counter.key.metric.name
            report.counters[name] = report.counters.get(name, 0) + int(counter.committed or 0)
    for sset in metrics.get("string_sets", []):
        if sset.key.metric.namespace != "tessera":
            continue
        values = sset.committed or set()
        if sset.key.metric.name == "failed_scenes":
            for value in values:
                key, url, reason = value.split("\t", 2)
                report.failed[key] = reason if reason.startswith(url) else f"{url}: {reason}"
        elif sset.key.metric.name == "items":
            for value in values:
                key = "/".join(value.rstrip("/").split("/")[-3:-1])
                report.succeeded[key] = value
    return report


def parse_args(argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    parser = argparse.ArgumentParser(
        prog="tessera infer",
        description="Run a model over scenes, tile by tile, into seamless COGs + STAC Items. "
        "Unrecognised options are Beam pipeline options (e.g. --runner DataflowRunner).",
    )
    parser.add_argument("--scenes", nargs="+", required=True, metavar="URL",
                        help="scene URLs or paths (file://, gs://, memory://, plain paths)")
    parser.add_argument("--output", required=True, metavar="URL", help="output root (catalog.json goes here)")
    parser.add_argument("--model", metavar="DIR", help="model bundle (default: the product's, else shipped)")
    parser.add_argument("--product", help="product profile name or YAML path (default: landcover)")
    parser.add_argument("--tile-size", type=int, help="tile core size in pixels (default: the bundle's)")
    parser.add_argument("--bands", help="1-based source band per model band, e.g. 3,2,1,4")
    parser.add_argument("--scale", type=float, help="multiply source values before the model")
    parser.add_argument("--batch-size", type=int, default=8, help="tiles per model call (default 8)")
    parser.add_argument("--inference", choices=["local", "kserve"], default="local")
    parser.add_argument("--kserve-url", metavar="URL", help="V2 endpoint for --inference kserve")
    parser.add_argument("--max-pixels", type=int, default=DEFAULT_MAX_PIXELS,
                        help="reject scenes with more pixels than this")
    parser.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                        help="print per-scene tile progress (default: when stderr is a terminal)")
    parser.add_argument("--json", action="store_true", help="print the job report as JSON")
    return parser.parse_known_args(argv)


def main(argv: list[str]) -> int:
    args, beam_args = parse_args(argv)
    bands = [int(b) for b in args.bands.split(",")] if args.bands else None
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = run_infer(
        args.scenes,
        args.output,
        beam_args=beam_args,
        model=args.model,
        product=args.product,
        tile_size=args.tile_size,
        bands=bands,
        scale=args.scale,
        inference=args.inference,
        kserve_url=args.kserve_url,
        batch_size=args.batch_size,
        max_pixels=args.max_pixels,
        progress=progress,
    )
    if args.json:
        print(report.to_json())
    else:
        for key, item in sorted(report.succeeded.items()):
            print(f"ok      {key}  {item}")
        for key, reason in sorted(report.failed.items()):
            print(f"FAILED  {key}  {reason}", file=sys.stderr)
        print(f"{len(report.succeeded)} scene(s) published, {len(report.failed)} failed, "
              f"{report.counters.get('tiles_read', 0)} tiles inferred, "
              f"{report.counters.get('tiles_skipped_nodata', 0)} skipped as no-data, "
              f"in {report.seconds:.1f} s; catalog: {args.output.rstrip('/')}/catalog.json")
    return 1 if report.failed else 0
