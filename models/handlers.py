"""Beam model handlers: the one seam through which tiles reach a model.

Elements are single tiles, float32 ``(H, W, C)`` raw values; predictions are float32
``(H, W, K)`` probabilities. RunInference batches them; ``load_model`` runs once per
worker and Beam's ``shared.Shared`` hands the same model to every thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from models.bundle import BundleMetadata, read_metadata, resolve_model_path
from models.bundle_runtime import load_bundle


class BundleModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """Runs a tessera SavedModel bundle in the worker process."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        intra_op_threads: int | None = None,
    ) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._model_path = resolve_model_path(model_path)
        self._batch = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._threads = intra_op_threads
        self._metadata: BundleMetadata | None = None

    @property
    def metadata(self) -> BundleMetadata:
        if self._metadata is None:
            self._metadata = read_metadata(self._model_path)
        return self._metadata

    def load_model(self) -> Any:
        return load_bundle(self._model_path, intra_op_threads=self._threads)

    def run_inference(
        self, batch: Sequence[np.ndarray], model: Any, inference_args: dict[str, Any] | None = None
    ) -> Iterable[np.ndarray]:
        stacked = np.stack(batch).astype(np.float32, copy=False)
        out = model(stacked)
        return list(out)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return dict(self._batch)

    def get_metrics_namespace(self) -> str:
        return "tessera"

    def share_model_across_processes(self) -> bool:
        return False


def predict_array(model_path: str | None, images: np.ndarray) -> np.ndarray:
    """Run the bundle on a float32 NHWC array in this process (tests, evaluation, bench)."""
    handler = BundleModelHandler(model_path)
    return handler.load_model()(np.asarray(images, dtype=np.float32))
