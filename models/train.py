"""``tessera train``: a U-Net from ``tessera prepare`` output, exported as a bundle.

Training reads the tf.Transform output (normalised patches) and the statistics from the
saved transform graph; the exported network puts those statistics into a Normalization
layer in front of the trained layers, so the bundle takes raw values. The receptive
field is measured on the exported network and the alignment is read off its pooling
layers. ``tessera train-default`` (``make model``) runs synth -> prepare -> train ->
evaluate from scratch and ships the result as ``models/bundles/default``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import sys
import tempfile
import time
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np

from transforms.core.errors import ConfigError

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class TrainConfig:
    data: str
    output: str
    epochs: int = 10
    batch_size: int = 16
    levels: int = 3
    width: int = 8
    learning_rate: float = 3e-3
    seed: int = 0
    tile_size: int = 256
    name: str = "tessera-landcover"

    def __post_init__(self) -> None:
        if self.epochs < 1 or self.batch_size < 1:
            raise ConfigError("--epochs and --batch-size must be >= 1")
        if self.tile_size % (2**self.levels):
            raise ConfigError(f"--tile-size {self.tile_size} must be a multiple of 2**levels = {2**self.levels}")


def read_manifest(data: str) -> dict[str, Any]:
    url = f"{data.rstrip('/')}/prepare.json"
    try:
        with fsspec.open(url, "rt") as f:
            return json.load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"{data} is not a finished `tessera prepare` output ({url} is missing)") from exc


def read_statistics(data: str) -> tuple[list[float], list[float]]:
    """Per-band mean and std, evaluated from the saved tf.Transform graph."""
    import tensorflow as tf
    import tensorflow_transform as tft

    from models import preprocess

    manifest = read_manifest(data)
    patch, bands = manifest["patch_size"], manifest["bands"]
    tf_output = tft.TFTransformOutput(data.rstrip("/"))
    probe = {
        preprocess.IMAGE: tf.ones([1, patch * patch * bands], tf.float32),
        preprocess.LABELS: tf.zeros([1, patch * patch], tf.int64),
    }
    out = tf_output.transform_raw_features(probe)
    mean = out[preprocess.MEAN].numpy()[0].astype(float).tolist()
    std = out[preprocess.STD].numpy()[0].astype(float).tolist()
    return mean, std


def load_split(data: str, split: str, patch: int, *, batch: int, shuffle: bool, seed: int) -> Any:
    """(normalised image, labels clipped to 0..K-1, weight 0 on nodata) batches, cached."""
    import tensorflow as tf

    from models import preprocess

    fs, root = fsspec.core.url_to_fs(data.rstrip("/"))
    files = sorted(fs.glob(f"{root}/{split}-*.tfrecord"))
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    if protocol not in ("file", "local"):
        files = [f"{protocol}://{f}" for f in files]
    spec = {k: v for k, v in preprocess.transformed_feature_spec(patch).items() if k in (preprocess.IMAGE, preprocess.LABELS)}

    def parse(record: Any) -> Any:
        ex = tf.io.parse_single_example(record, spec)
        image = tf.reshape(ex[preprocess.IMAGE], [patch, patch, 4])
        labels = tf.cast(tf.reshape(ex[preprocess.LABELS], [patch, patch]), tf.uint8)
        return image, labels

    def augment(image: Any, labels: Any) -> Any:
        k = tf.random.uniform([], 0, 4, tf.int32)
        flip = tf.random.uniform([]) < 0.5
        image, labels = tf.image.rot90(image, k), tf.image.rot90(labels[..., None], k)[..., 0]
        image = tf.cond(flip, lambda: tf.reverse(image, [1]), lambda: image)
        labels = tf.cond(flip, lambda: tf.reverse(labels, [1]), lambda: labels)
        return image, labels

    def weigh(image: Any, labels: Any) -> Any:
        valid = tf.not_equal(labels, 255)
        return image, tf.where(valid, tf.cast(labels, tf.int32), 0), tf.cast(valid, tf.float32)

    ds = tf.data.TFRecordDataset(files).map(parse, num_parallel_calls=tf.data.AUTOTUNE).cache()
    if shuffle:
        ds = ds.shuffle(4096, seed=seed, reshuffle_each_iteration=True).map(augment, num_parallel_calls=tf.data.AUTOTUNE)
    return ds.map(weigh).batch(batch).prefetch(tf.data.AUTOTUNE)


def alignment_of(model: Any) -> int:
    """Product of the strides of the network's pooling/strided layers."""
    factor = 1
    for layer in model._flatten_layers(include_self=False, recursive=True):
        stride = getattr(layer, "strides", None) or getattr(layer, "pool_size", None)
        if stride and type(layer).__name__ != "UpSampling2D":
            factor *= int(stride[0])
    return factor


def save_curves(history: dict[str, list[float]], path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(9, 3.5))
    for key, ax in (("loss", axes[0]), ("miou", axes[1])):
        for prefix in ("", "val_"):
            values = history.get(prefix + key)
            if values:
                ax.plot(range(1, len(values) + 1), values, label=prefix + key)
        ax.set_xlabel("epoch")
        ax.set_title(key)
        ax.legend()
    fig.tight_layout()
    with fsspec.open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


@dataclass
class TrainResult:
    serving: Any
    core: Any
    metadata: dict[str, Any]
    history: dict[str, list[float]]
    seconds: float


def train(cfg: TrainConfig) -> TrainResult:
    import keras

    from models.receptive_field import measure_receptive_field
    from models.reference import DEFAULT_BANDS, DEFAULT_CLASSES
    from models.unet import UNetConfig, build_core, build_serving

    start = time.perf_counter()
    manifest = read_manifest(cfg.data)
    patch = manifest["patch_size"]
    if patch % (2**cfg.levels):
        raise ConfigError(f"patch size {patch} is not a multiple of 2**levels = {2**cfg.levels}")
    mean, std = read_statistics(cfg.data)
    train_ds = load_split(cfg.data, "train", patch, batch=cfg.batch_size, shuffle=True, seed=cfg.seed)
    val_ds = None
    if manifest["patches"].get("validation", 0):
        val_ds = load_split(cfg.data, "validation", patch, batch=64, shuffle=False, seed=cfg.seed)

    unet = UNetConfig(levels=cfg.levels, width=cfg.width, classes=manifest["num_classes"])
    core = build_core(unet, seed=cfg.seed)
    steps = max(1, -(-manifest["patches"]["train"] // cfg.batch_size)) * cfg.epochs
    schedule = keras.optimizers.schedules.CosineDecay(cfg.learning_rate, steps, alpha=0.05)
    core.compile(
        optimizer=keras.optimizers.Adam(schedule),
        loss=keras.losses.SparseCategoricalCrossentropy(),
        weighted_metrics=[keras.metrics.MeanIoU(unet.classes, sparse_y_pred=False, name="miou")],
    )
    fit = core.fit(train_ds, validation_data=val_ds, epochs=cfg.epochs, shuffle=False, verbose=2)  # tf.data shuffles
    history = {k: [float(v) for v in vals] for k, vals in fit.history.items()}

    serving = build_serving(core, mean, std)
    alignment = alignment_of(serving)
    rf = measure_receptive_field(lambda x: np.asarray(serving(x, training=False)), unet.bands, alignment,
                                 size=max(128, 16 * alignment * 2))
    config = manifest["config"]
    metadata = {
        "name": cfg.name,
        "architecture": unet.name,
        "bands": DEFAULT_BANDS,
        "classes": DEFAULT_CLASSES[: unet.classes],
        "receptive_field": rf,
        "alignment": alignment,
        "tile_size": cfg.tile_size,
        "normalisation": {"mean": mean, "std": std, "source": "tensorflow-transform"},
        "input_dtype": "uint16",
        "trained_on": {
            "data": cfg.data,
            "prepare_seed": config["seed"],
            "patch_size": patch,
            "patches": manifest["patches"],
            "scenes": {k: len(v) for k, v in manifest["scenes"].items()},
            "scene_urls": manifest["scenes"],
            "synth_seeds": manifest.get("synth_seeds"),
            "epochs": cfg.epochs,
            "batch_size": cfg.batch_size,
            "train_seed": cfg.seed,
        },
        "metrics": {
            "validation_patches": {k: round(v[-1], 4) for k, v in history.items() if k.startswith("val_")},
        },
    }
    return TrainResult(serving, core, metadata, history, time.perf_counter() - start)


def export(result: TrainResult, output: str) -> Any:
    from models.export import export_bundle

    meta = export_bundle(result.serving, result.metadata, output)
    save_curves(result.history, f"{output.rstrip('/')}/assets/training_curves.png")
    return meta


def _parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--levels", type=int, default=3, help="poolings (alignment = 2**levels)")
    parser.add_argument("--width", type=int, default=8, help="filters at full resolution")
    parser.add_argument("--learning-rate", type=float, default=3e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--tile-size", type=int, default=256)
    parser.add_argument("--name", default="tessera-landcover")
    return parser


def main(argv: list[str]) -> int:
    parser = _parser("tessera train")
    parser.add_argument("--data", required=True, help="`tessera prepare` output URL")
    parser.add_argument("--output", required=True, help="bundle directory URL")
    args = parser.parse_args(argv)
    cfg = TrainConfig(**{k: v for k, v in vars(args).items()})
    result = train(cfg)
    meta = export(result, cfg.output)
    print(json.dumps({"output": cfg.output, "version": meta.version, "seconds": round(result.seconds, 1),
                      "receptive_field": meta.receptive_field, "alignment": meta.alignment,
                      "metrics": meta.metrics}, indent=2))
    return 0


# --- make model -------------------------------------------------------------------------

DEFAULT_TRAIN_SEED = 1
DEFAULT_EVAL_SEED = 2027


def train_default(argv: list[str]) -> int:
    """synth -> prepare -> train -> evaluate (held-out seed) -> export the shipped bundle."""
    from beam_pipelines.prepare import PrepareConfig, build_and_run
    from models.bundle import SHIPPED_MODEL
    from models.evaluate import evaluate
    from models.synth import write_scenes

    parser = _parser("tessera train-default")
    parser.add_argument("--output", default=str(SHIPPED_MODEL))
    parser.add_argument("--work", help="keep intermediate data here (default: a temp dir)")
    parser.add_argument("--scenes", type=int, default=20)
    parser.add_argument("--eval-scenes", type=int, default=4)
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--patch-size", type=int, default=64)
    parser.add_argument("--patches-per-scene", type=int, default=160)
    parser.set_defaults(epochs=5)
    args = parser.parse_args(argv)
    start, cpu_start = time.perf_counter(), time.process_time()
    work = args.work or tempfile.mkdtemp(prefix="tessera-train-")
    timings: dict[str, float] = {}
    try:
        t = time.perf_counter()
        pairs = write_scenes(f"{work}/scenes", args.scenes, DEFAULT_TRAIN_SEED, args.size)
        held_out = write_scenes(f"{work}/heldout", args.eval_scenes, DEFAULT_EVAL_SEED, args.size)
        timings["synth"] = time.perf_counter() - t
        t = time.perf_counter()
        prep = PrepareConfig(scenes=[p[0] for p in pairs], labels=[p[1] for p in pairs], output=f"{work}/data",
                             patch_size=args.patch_size, patches_per_scene=args.patches_per_scene,
                             seed=DEFAULT_TRAIN_SEED, val_fraction=0.1)
        build_and_run(prep, [])
        _annotate_manifest(f"{work}/data", {"synth_seeds": [DEFAULT_TRAIN_SEED], "synth_size": args.size})
        timings["prepare"] = time.perf_counter() - t
        t = time.perf_counter()
        cfg = TrainConfig(data=f"{work}/data", output=args.output, epochs=args.epochs, batch_size=args.batch_size,
                          levels=args.levels, width=args.width, learning_rate=args.learning_rate,
                          seed=args.seed, tile_size=args.tile_size, name="tessera-default")
        result = train(cfg)
        timings["train"] = time.perf_counter() - t
        t = time.perf_counter()
        candidate = f"{work}/candidate"
        export(result, candidate)
        scores = evaluate(candidate, f"{work}/heldout", output=f"{work}/eval")
        timings["evaluate"] = time.perf_counter() - t
        result.metadata["trained_on"]["data"] = "tessera train-default (temporary folder)"
        result.metadata["metrics"] = {
            **result.metadata["metrics"],
            "held_out": {"synth_seed": DEFAULT_EVAL_SEED, "scenes": len(held_out), **scores.summary()},
            "timings_s": {k: round(v, 1) for k, v in timings.items()},
            "wall_time_s": round(time.perf_counter() - start, 1),
            "cpu_time_s": round(time.process_time() - cpu_start, 1),
            "cpu_count": os.cpu_count(),
        }
        meta = export(result, args.output)
        with fsspec.open(f"{work}/eval/confusion.png", "rb") as src, \
                fsspec.open(f"{args.output.rstrip('/')}/assets/confusion.png", "wb") as dst:
            dst.write(src.read())
    finally:
        if not args.work:
            shutil.rmtree(work, ignore_errors=True)
    print(json.dumps({"output": args.output, "version": meta.version, "metrics": meta.metrics}, indent=2))
    sys.stdout.flush()
    sys.stderr.flush()
    # Leaving the interpreter normally after Keras training and two Beam pipelines in one
    # process was seen to segfault in native teardown (exit 139 after a correct result);
    # everything is written and flushed, so end here.
    os._exit(0)


def _annotate_manifest(data: str, extra: dict[str, Any]) -> None:
    manifest = read_manifest(data)
    manifest.update(extra)
    with fsspec.open(f"{data.rstrip('/')}/prepare.json", "wt") as f:
        json.dump(manifest, f, indent=2, sort_keys=True)

