"""``tessera prepare``: training patches from scenes + labels, and tf.Transform statistics.

The graph::

    scene/label pairs -> CheckInputs (driver) -> SamplePatches -> split by scene
        train -> AnalyzeAndTransformDataset -> TFRecords   + WriteTransformFn
        val   -> TransformDataset (same transform_fn) -> TFRecords

Outputs under ``--output``: ``train-*.tfrecord``, ``validation-*.tfrecord``,
``transform_fn/`` + ``transformed_metadata/`` (tf.Transform), and ``prepare.json`` (the
manifest, written last; ``tessera train`` refuses a folder without it). Labels are a
raster (any grid overlapping the scene, resampled nearest onto it) or vector polygons
(GeoJSON / GeoParquet with a class id column), rasterised onto the scene grid.
Patch centres are drawn class by class in turn with a generator seeded by
``(seed, scene index)``, so the same inputs and seed give the same records.
"""

from __future__ import annotations

import argparse
import io
import json
import logging
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import fsspec
import numpy as np

from transforms.core.errors import ConfigError, InvalidSceneError, SceneNotFoundError

log = logging.getLogger(__name__)

NAMESPACE = "tessera.prepare"
NUM_CLASSES = 5
NODATA_LABEL = 255
VECTOR_SUFFIXES = (".geojson", ".json", ".parquet", ".geoparquet", ".gpkg", ".shp")
CLASS_COLUMNS = ("class", "class_id", "label")
# Later classes are burnt over earlier ones when vector polygons overlap.
BURN_ORDER = (0, 3, 4, 2, 1)
RECORDS_PER_BATCH = 64


@dataclass(frozen=True)
class PrepareConfig:
    scenes: list[str]
    labels: list[str]
    output: str
    patch_size: int = 64
    patches_per_scene: int = 64
    seed: int = 0
    val_fraction: float = 0.2
    class_column: str | None = None

    def __post_init__(self) -> None:
        if not self.scenes:
            raise ConfigError("give at least one scene with --scenes URL...")
        if len(self.scenes) != len(self.labels):
            raise ConfigError(
                f"--scenes has {len(self.scenes)} URLs but --labels has {len(self.labels)}: "
                "give one label file per scene, in the same order"
            )
        if self.patch_size < 8 or self.patch_size % 8:
            raise ConfigError(f"--patch-size must be a multiple of 8 and >= 8, got {self.patch_size}")
        if self.patches_per_scene < 1:
            raise ConfigError(f"--patches-per-scene must be >= 1, got {self.patches_per_scene}")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ConfigError(f"--val-fraction must be in [0, 1), got {self.val_fraction}")


@dataclass(frozen=True)
class SceneJob:
    index: int
    scene: str
    labels: str
    split: str  # "train" | "validation"


@dataclass
class PrepareReport:
    output: str
    patches: dict[str, int] = field(default_factory=dict)
    scenes: dict[str, list[str]] = field(default_factory=dict)
    skipped: dict[str, int] = field(default_factory=dict)


# --- pure functions -------------------------------------------------------------------


def split_scenes(n: int, val_fraction: float, seed: int) -> list[str]:
    """Train/validation split by scene, reproducible by seed."""
    n_val = 0
    if n >= 2 and val_fraction > 0:
        n_val = min(n - 1, max(1, round(n * val_fraction)))
    order = np.random.default_rng([seed, 7919]).permutation(n)
    val = set(order[:n_val].tolist())
    return ["validation" if i in val else "train" for i in range(n)]


def sample_patch_origins(labels: np.ndarray, patch: int, count: int, rng: np.random.Generator) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` patches, centred on classes taken in turn."""
    h, w = labels.shape
    if h < patch or w < patch:
        return []
    half = patch // 2
    centres = labels[half : h - patch + half + 1, half : w - patch + half + 1]  # index == origin
    present = [c for c in range(NUM_CLASSES) if (centres == c).any()]
    if not present:
        return []
    where = {c: np.flatnonzero(centres == c) for c in present}
    start = int(rng.integers(len(present)))
    origins = []
    for k in range(count):
        cls = present[(start + k) % len(present)]
        flat = int(where[cls][rng.integers(where[cls].size)])
        r, c = divmod(flat, centres.shape[1])
        origins.append((r, c))
    return origins


def patch_records(image: np.ndarray, labels: np.ndarray, origins: list[tuple[int, int]], patch: int) -> Iterator[dict[str, np.ndarray]]:
    """Flat records (see models.preprocess) from a bands-first image and its labels."""
    for r, c in origins:
        img = image[:, r : r + patch, c : c + patch].transpose(1, 2, 0)
        lab = labels[r : r + patch, c : c + patch]
        yield {
            "image": np.ascontiguousarray(img, dtype=np.float32).reshape(-1),
            "labels": lab.astype(np.int64).reshape(-1),
        }


def to_record_batch(records: list[dict[str, np.ndarray]]) -> Any:
    """Patches as one Arrow RecordBatch of list columns (tf.Transform's TFXIO input)."""
    import pyarrow as pa

    columns = []
    for name in ("image", "labels"):
        values = np.stack([r[name] for r in records])
        offsets = np.arange(0, values.size + 1, values.shape[1], dtype=np.int32)
        columns.append(pa.ListArray.from_arrays(pa.array(offsets), pa.array(values.ravel())))
    return pa.RecordBatch.from_arrays(columns, ["image", "labels"])


def tensor_adapter_config(patch_size: int) -> Any:
    import pyarrow as pa
    from tensorflow_transform.tf_metadata import schema_utils
    from tfx_bsl.public import tfxio
    from tfx_bsl.tfxio import tensor_representation_util

    from models import preprocess

    schema = schema_utils.schema_from_feature_spec(preprocess.raw_feature_spec(patch_size))
    arrow = pa.schema([("image", pa.list_(pa.float32())), ("labels", pa.list_(pa.int64()))])
    return tfxio.TensorAdapterConfig(arrow, tensor_representation_util.InferTensorRepresentationsFromSchema(schema))


# --- reading scenes and labels --------------------------------------------------------


def _read_bytes(url: str) -> bytes:
    try:
        with fsspec.open(url, "rb") as f:
            return f.read()
    except FileNotFoundError as exc:
        raise SceneNotFoundError(url, "does not exist") from exc


def read_raster(url: str, header_only: bool = False) -> tuple[np.ndarray | None, dict[str, Any]]:
    """(bands-first array or None, profile) of a raster at any fsspec URL."""
    from rasterio.errors import RasterioIOError
    from rasterio.io import MemoryFile

    payload = _read_bytes(url)
    try:
        with MemoryFile(payload) as mem, mem.open() as ds:
            profile = {"crs": ds.crs, "transform": ds.transform, "width": ds.width, "height": ds.height,
                       "count": ds.count, "nodata": ds.nodata, "bounds": ds.bounds}
            data = None if header_only else ds.read()
    except RasterioIOError as exc:
        raise InvalidSceneError(url, f"is not a readable raster ({exc})") from exc
    if profile["crs"] is None:
        raise InvalidSceneError(url, "has no CRS; georeference it before preparing training data")
    return data, profile


def _is_vector(url: str) -> bool:
    return url.lower().endswith(VECTOR_SUFFIXES)


def read_vector(url: str, class_column: str | None) -> Any:
    """A GeoDataFrame with a ``class_id`` column, validated."""
    import geopandas as gpd

    payload = _read_bytes(url)
    try:
        if url.lower().endswith((".parquet", ".geoparquet")):
            frame = gpd.read_parquet(io.BytesIO(payload))
        else:
            frame = gpd.read_file(io.BytesIO(payload))
    except Exception as exc:  # noqa: BLE001 - GDAL/pyarrow raise many types
        raise InvalidSceneError(url, f"is not a readable vector file ({exc})") from exc
    if len(frame) == 0:
        raise InvalidSceneError(url, "has no features: an empty label file would train on nothing")
    columns = [class_column] if class_column else [c for c in CLASS_COLUMNS if c in frame.columns]
    if not columns or columns[0] not in frame.columns:
        raise InvalidSceneError(
            url, f"has no class id column (looked for {class_column or CLASS_COLUMNS}); pass --class-column NAME"
        )
    ids = frame[columns[0]].to_numpy()
    unknown = sorted({int(v) for v in ids if int(v) not in range(NUM_CLASSES)})
    if unknown:
        raise InvalidSceneError(url, f"has unknown class ids {unknown}; expected 0..{NUM_CLASSES - 1}")
    if frame.crs is None:
        raise InvalidSceneError(url, "has no CRS")
    return frame.assign(class_id=ids.astype(int))


def _overlaps(a: Any, b: Any) -> bool:
    return a.left < b.right and b.left < a.right and a.bottom < b.top and b.bottom < a.top


def check_pair(scene_url: str, label_url: str, class_column: str | None) -> None:
    """Header-level checks in the driver: fail before any work starts."""
    from rasterio.coords import BoundingBox
    from rasterio.warp import transform_bounds

    _, scene = read_raster(scene_url, header_only=True)
    if _is_vector(label_url):
        frame = read_vector(label_url, class_column).to_crs(scene["crs"])
        bounds = BoundingBox(*frame.total_bounds)
    else:
        _, lab = read_raster(label_url, header_only=True)
        bounds = BoundingBox(*transform_bounds(lab["crs"], scene["crs"], *lab["bounds"]))
    if not _overlaps(bounds, scene["bounds"]):
        raise InvalidSceneError(
            label_url,
            f"does not overlap its scene {scene_url} (labels {tuple(round(v) for v in bounds)} vs scene "
            f"{tuple(round(v) for v in scene['bounds'])} in {scene['crs']}); check the --labels order and CRS",
        )


def labels_on_scene_grid(label_url: str, profile: dict[str, Any], class_column: str | None) -> np.ndarray:
    """Labels as uint8 on the scene's grid (255 where unknown)."""
    shape = (profile["height"], profile["width"])
    if _is_vector(label_url):
        from rasterio.features import rasterize

        frame = read_vector(label_url, class_column).to_crs(profile["crs"])
        order = {c: i for i, c in enumerate(BURN_ORDER)}
        frame = frame.iloc[np.argsort([order[c] for c in frame["class_id"]], kind="stable")]
        shapes = [(geom, int(c)) for geom, c in zip(frame.geometry, frame["class_id"], strict=True) if geom is not None]
        return rasterize(shapes, out_shape=shape, transform=profile["transform"], fill=0, dtype="uint8")
    data, lab = read_raster(label_url)
    assert data is not None
    if lab["crs"] == profile["crs"] and lab["transform"] == profile["transform"] and (lab["height"], lab["width"]) == shape:
        return data[0].astype(np.uint8) if data.dtype != np.uint8 else data[0]
    from rasterio.warp import Resampling, reproject

    out = np.full(shape, NODATA_LABEL, np.uint8)
    reproject(data[0].astype(np.uint8), out, src_transform=lab["transform"], src_crs=lab["crs"],
              src_nodata=lab["nodata"] if lab["nodata"] is not None else NODATA_LABEL,
              dst_transform=profile["transform"], dst_crs=profile["crs"], dst_nodata=NODATA_LABEL,
              resampling=Resampling.nearest)
    return out


# --- Beam wiring ------------------------------------------------------------------------


def _sample_scene(job: SceneJob, cfg: PrepareConfig) -> tuple[list[dict[str, np.ndarray]], str | None, str | None]:
    """(records, skip reason, problem) for one scene: the pure body of SamplePatches."""
    image, profile = read_raster(job.scene)
    assert image is not None
    labels = labels_on_scene_grid(job.labels, profile, cfg.class_column)
    valid = np.any(image != (profile["nodata"] or 0), axis=0)
    labels = np.where(valid, labels, NODATA_LABEL).astype(np.uint8)
    unknown = sorted(set(np.unique(labels).tolist()) - set(range(NUM_CLASSES)) - {NODATA_LABEL})
    if unknown:
        return [], None, f"{job.labels}: unknown class ids {unknown}; expected 0..{NUM_CLASSES - 1} and {NODATA_LABEL} for nodata"
    if not valid.any():
        return [], "no_valid_pixels", None
    if (labels != NODATA_LABEL).sum() == 0:
        return [], "no_labelled_pixels", None
    rng = np.random.default_rng([cfg.seed, job.index])
    origins = sample_patch_origins(labels, cfg.patch_size, cfg.patches_per_scene, rng)
    if not origins:
        return [], "smaller_than_patch", None
    image = np.where(valid[None], image, 0)
    return list(patch_records(image, labels, origins, cfg.patch_size)), None, None


def _sample_fn(cfg: PrepareConfig) -> Any:
    import apache_beam as beam
    from apache_beam.metrics import Metrics

    class SamplePatches(beam.DoFn):
        """SceneJob -> ("train" | "validation", record); problems to a side output."""

        def process(self, job: SceneJob) -> Iterator[Any]:
            records, skip, problem = _sample_scene(job, cfg)
            if problem:
                Metrics.counter(NAMESPACE, "scenes_rejected").inc()
                yield beam.pvalue.TaggedOutput("problems", problem)
                return
            if skip:
                Metrics.counter(NAMESPACE, f"scenes_skipped_{skip}").inc()
                log.warning("skipping %s: %s", job.scene, skip)
                return
            Metrics.counter(NAMESPACE, "scenes_sampled").inc()
            Metrics.counter(NAMESPACE, f"patches_{job.split}").inc(len(records))
            for i in range(0, len(records), RECORDS_PER_BATCH):
                yield job.split, to_record_batch(records[i : i + RECORDS_PER_BATCH])

    return SamplePatches()


def build_and_run(cfg: PrepareConfig, beam_args: list[str]) -> PrepareReport:
    import apache_beam as beam
    import tensorflow_transform.beam as tft_beam
    from apache_beam.metrics.metric import MetricsFilter

    from beam_pipelines.runner import make_pipeline, pipeline_options
    from models import preprocess

    for scene, label in zip(cfg.scenes, cfg.labels, strict=True):
        check_pair(scene, label, cfg.class_column)
    splits = split_scenes(len(cfg.scenes), cfg.val_fraction, cfg.seed)
    jobs = [SceneJob(i, s, lab, split) for i, (s, lab, split) in enumerate(zip(cfg.scenes, cfg.labels, splits, strict=True))]
    out = cfg.output.rstrip("/")
    fs, root = fsspec.core.url_to_fs(out)
    fs.makedirs(root, exist_ok=True)
    for stale in ("prepare.json",):
        if fs.exists(f"{root}/{stale}"):
            fs.rm(f"{root}/{stale}")

    options = pipeline_options(beam_args)
    raw_meta = tensor_adapter_config(cfg.patch_size)
    pipeline = make_pipeline(options)
    with tft_beam.Context(temp_dir=f"{out}/tmp", force_tf_compat_v1=False):
        sampled = (
            pipeline
            | "Scenes" >> beam.Create(jobs)
            | "SamplePatches" >> beam.ParDo(_sample_fn(cfg)).with_outputs("problems", main="patches")
        )
        train = sampled.patches | "TrainOnly" >> beam.Filter(lambda kv: kv[0] == "train") | "DropKeyT" >> beam.Values()
        val = sampled.patches | "ValOnly" >> beam.Filter(lambda kv: kv[0] == "validation") | "DropKeyV" >> beam.Values()
        (train_t, transform_fn) = (train, raw_meta) | "Analyze" >> tft_beam.AnalyzeAndTransformDataset(
            preprocess.make_preprocessing_fn(), output_record_batches=True
        )
        val_t = ((val, raw_meta), transform_fn) | "TransformVal" >> tft_beam.TransformDataset(output_record_batches=True)
        for name, data in (("train", train_t), ("validation", val_t)):
            _ = (
                data
                | f"Encode_{name}" >> tft_beam.EncodeTransformedDataset()
                | f"Write_{name}" >> beam.io.WriteToTFRecord(f"{out}/{name}", file_name_suffix=".tfrecord")
            )
        _ = transform_fn | "WriteTransformFn" >> tft_beam.WriteTransformFn(out)
        _ = sampled.problems | "WriteProblems" >> beam.io.WriteToText(f"{out}/problems", file_name_suffix=".txt")
        result = pipeline.run()
        result.wait_until_finish()

    counters = {
        m.key.metric.name: int(m.committed if m.committed is not None else m.attempted)
        for m in result.metrics().query(MetricsFilter().with_namespace(NAMESPACE))["counters"]
    }
    problems = []
    for path in fs.glob(f"{root}/problems*.txt"):
        with fs.open(path, "rt") as f:
            problems += [line.strip() for line in f if line.strip()]
        fs.rm(path)  # the problems are in the raised error; keep the folder clean
    if fs.exists(f"{root}/tmp"):
        fs.rm(f"{root}/tmp", recursive=True)
    if problems:
        raise InvalidSceneError(problems[0].split(":")[0], "bad labels:\n  " + "\n  ".join(problems))
    report = PrepareReport(
        output=out,
        patches={"train": counters.get("patches_train", 0), "validation": counters.get("patches_validation", 0)},
        scenes={s: [j.scene for j in jobs if j.split == s] for s in ("train", "validation")},
        skipped={k.removeprefix("scenes_skipped_"): v for k, v in counters.items() if k.startswith("scenes_skipped_")},
    )
    if report.patches["train"] == 0:
        raise InvalidSceneError(
            ",".join(report.scenes["train"]) or out,
            f"no training patch was produced (skipped scenes: {report.skipped or 'none'}); "
            "check that scenes have valid pixels and are larger than --patch-size",
        )
    manifest = {
        "patch_size": cfg.patch_size,
        "bands": 4,
        "num_classes": NUM_CLASSES,
        "nodata_label": NODATA_LABEL,
        "config": asdict(cfg),
        **asdict(report),
    }
    with fsspec.open(f"{out}/prepare.json", "wt") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)
    return report


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tessera prepare", description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenes", nargs="+", required=True, help="scene URLs")
    parser.add_argument("--labels", nargs="+", required=True, help="label URLs (raster or vector), one per scene")
    parser.add_argument("--output", required=True, help="output folder URL")
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--patches-per-scene", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--val-fraction", type=float, default=0.2)
    parser.add_argument("--class-column", default=None, help="class id column of vector labels")
    args, beam_args = parser.parse_known_args(argv)
    cfg = PrepareConfig(
        scenes=args.scenes, labels=args.labels, output=args.output, patch_size=args.patch_size,
        patches_per_scene=args.patches_per_scene, seed=args.seed, val_fraction=args.val_fraction,
        class_column=args.class_column,
    )
    report = build_and_run(cfg, beam_args)
    print(json.dumps(asdict(report), indent=2, sort_keys=True))
    return 0
