"""``tessera evaluate``: per-class IoU and mIoU of a bundle on held-out labelled scenes.

Predictions come from the production path: ``beam_pipelines.infer.run_infer`` (tiles,
halos, stitching, nodata handling exactly as ``tessera infer``), then each scene's
``{product}/{scene_id}/classes.tif`` is compared with its label raster. ``--data`` is a
folder as ``tessera synth`` writes it: ``scene_*.tif`` next to ``labels_*.tif``.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from dataclasses import dataclass
from typing import Any

import fsspec
import numpy as np

from transforms.core.errors import ConfigError

NODATA = 255


# --- metric maths (pure) ------------------------------------------------------------------


def confusion_matrix(truth: np.ndarray, pred: np.ndarray, classes: int) -> tuple[np.ndarray, int]:
    """(``classes x classes`` counts, rows truth / columns prediction; pixels with a label
    but no prediction). Pixels whose truth is nodata are ignored."""
    truth = np.asarray(truth).ravel()
    pred = np.asarray(pred).ravel()
    if truth.shape != pred.shape:
        raise ValueError(f"truth and prediction differ in size: {truth.shape} vs {pred.shape}")
    labelled = truth != NODATA
    if np.any(truth[labelled] >= classes):
        raise ValueError(f"truth holds class ids >= {classes}: {sorted(set(truth[labelled][truth[labelled] >= classes].tolist()))}")
    predicted = labelled & (pred < classes)
    matrix = np.bincount(truth[predicted].astype(np.int64) * classes + pred[predicted], minlength=classes * classes)
    return matrix.reshape(classes, classes), int(labelled.sum() - predicted.sum())


def iou_from_confusion(matrix: np.ndarray, missed_per_class: np.ndarray | None = None) -> np.ndarray:
    """Per-class IoU = TP / (TP + FP + FN); NaN for a class absent from truth and prediction.
    ``missed_per_class`` (labelled but unpredicted pixels) count as false negatives."""
    matrix = np.asarray(matrix, dtype=np.float64)
    tp = np.diag(matrix)
    fn = matrix.sum(1) - tp + (0 if missed_per_class is None else missed_per_class)
    fp = matrix.sum(0) - tp
    denom = tp + fp + fn
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denom > 0, tp / denom, np.nan)


@dataclass
class Scores:
    classes: list[str]
    confusion: np.ndarray
    missed: np.ndarray  # per truth class: labelled pixels that got no prediction
    scenes: int

    @property
    def iou(self) -> dict[str, float]:
        values = iou_from_confusion(self.confusion, self.missed)
        return {name: float(v) for name, v in zip(self.classes, values, strict=True)}

    @property
    def miou(self) -> float:
        values = [v for v in self.iou.values() if not np.isnan(v)]
        return float(np.mean(values)) if values else float("nan")

    @property
    def pixels(self) -> int:
        return int(self.confusion.sum() + self.missed.sum())

    def to_dict(self) -> dict[str, Any]:
        return {"miou": self.miou, "iou": self.iou, "confusion": self.confusion.astype(int).tolist(),
                "pixels": self.pixels, "unpredicted": int(self.missed.sum()), "scenes": self.scenes}

    def summary(self) -> dict[str, Any]:
        return {"miou": round(self.miou, 4), "iou": {k: round(v, 4) for k, v in self.iou.items()},
                "pixels": self.pixels}


def save_confusion_png(scores: Scores, path: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    m = scores.confusion.astype(np.float64)
    norm = m / np.maximum(m.sum(1, keepdims=True), 1)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    ax.imshow(norm, cmap="Blues", vmin=0, vmax=1)
    k = len(scores.classes)
    ax.set_xticks(range(k), scores.classes, rotation=45, ha="right")
    ax.set_yticks(range(k), scores.classes)
    for i in range(k):
        for j in range(k):
            ax.text(j, i, f"{norm[i, j]:.2f}", ha="center", va="center", fontsize=8,
                    color="white" if norm[i, j] > 0.5 else "black")
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(f"mIoU {scores.miou:.3f}")
    fig.tight_layout()
    with fsspec.open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=80)
    plt.close(fig)


# --- through the inference pipeline -------------------------------------------------------


def find_pairs(data: str) -> list[tuple[str, str]]:
    """(scene URL, label URL) pairs of a synth folder."""
    fs, root = fsspec.core.url_to_fs(data.rstrip("/"))
    protocol = fs.protocol[0] if isinstance(fs.protocol, tuple) else fs.protocol
    prefix = "" if protocol in ("file", "local") else f"{protocol}://"
    pairs = []
    for path in sorted(fs.glob(f"{root}/scene_*.tif")):
        label = path.rsplit("/", 1)[0] + "/labels_" + path.rsplit("/", 1)[1].removeprefix("scene_")
        if fs.exists(label):
            pairs.append((prefix + path, prefix + label))
    if not pairs:
        raise ConfigError(f"{data} holds no scene_*.tif with a matching labels_*.tif (write some with `tessera synth`)")
    return pairs


def _read_band(url: str) -> np.ndarray:
    from transforms.core.rasterio_io import open_dataset

    with open_dataset(url) as ds:
        return ds.read(1)


def evaluate(model: str | None, data: str, *, output: str | None = None, tile_size: int | None = None,
             product: str = "landcover", beam_args: list[str] | None = None) -> Scores:
    """Run ``tessera infer``'s pipeline on the scenes of ``data`` and score its classes."""
    from beam_pipelines.infer import run_infer
    from models.bundle import read_metadata
    from transforms.core.rasterio_io import scene_id_for

    meta = read_metadata(model)
    pairs = find_pairs(data)
    work = output or tempfile.mkdtemp(prefix="tessera-eval-")
    out = work.rstrip("/") + "/infer"
    report = run_infer([s for s, _ in pairs], out, model=model, tile_size=tile_size, product=product,
                       beam_args=beam_args)
    if report.failed:
        raise ConfigError(f"inference failed on {len(report.failed)} scene(s): {report.failed}")
    k = len(meta.classes)
    confusion = np.zeros((k, k), np.int64)
    missed = np.zeros(k, np.int64)
    for scene, label in pairs:
        truth = _read_band(label)
        pred = _read_band(f"{out}/{product}/{scene_id_for(scene)}/classes.tif")
        m, _ = confusion_matrix(truth, pred, k)
        confusion += m
        lab = truth != NODATA
        missed += np.bincount(truth[lab & (pred >= k)].astype(np.int64), minlength=k)[:k]
    scores = Scores([c.name for c in meta.classes], confusion, missed, len(pairs))
    save_confusion_png(scores, f"{work.rstrip('/')}/confusion.png")
    return scores


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="tessera evaluate", description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", help="bundle directory (default: the shipped model)")
    parser.add_argument("--data", required=True, help="folder of scene_*.tif + labels_*.tif")
    parser.add_argument("--output", help="where inference outputs and confusion.png go (default: temp)")
    parser.add_argument("--tile-size", type=int)
    parser.add_argument("--json", action="store_true", help="print the scores as JSON")
    args, beam_args = parser.parse_known_args(argv)
    scores = evaluate(args.model, args.data, output=args.output, tile_size=args.tile_size, beam_args=beam_args)
    if args.json:
        print(json.dumps(scores.to_dict(), sort_keys=True))
    else:
        print(f"mIoU {scores.miou:.4f} over {scores.pixels} labelled pixels in {scores.scenes} scene(s)")
        for name, value in scores.iou.items():
            print(f"  {name:<12} IoU {value:.4f}")
    return 0
