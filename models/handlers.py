"""Beam model handlers: the one seam through which tiles reach a model.

Elements are single tiles, float32 ``(H, W, C)`` raw values; predictions are float32
``(H, W, K)`` probabilities, or with ``planes=True`` (what the pipeline asks for) the
uint8 ``(2, H, W)`` class and confidence planes of ``bundle_runtime._planes_graph``.
RunInference batches them; ``load_model`` runs once per worker and Beam's
``shared.Shared`` hands the same model to every thread.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import numpy as np
from apache_beam.ml.inference.base import ModelHandler

from models.bundle import BundleMetadata, read_metadata, resolve_model_path
from models.bundle_runtime import batch_nbytes, load_bundle
from transforms.core.buffers import MODEL_INPUTS


class BundleModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """Runs a tessera SavedModel bundle in the worker process."""

    def __init__(
        self,
        model_path: str | None = None,
        *,
        min_batch_size: int = 1,
        max_batch_size: int = 8,
        intra_op_threads: int | None = None,
        planes: bool = False,
    ) -> None:
        super().__init__(min_batch_size=min_batch_size, max_batch_size=max_batch_size)
        self._model_path = resolve_model_path(model_path)
        self._batch = {"min_batch_size": min_batch_size, "max_batch_size": max_batch_size}
        self._threads = intra_op_threads
        self._metadata: BundleMetadata | None = None
        self._planes = planes

    @property
    def metadata(self) -> BundleMetadata:
        if self._metadata is None:
            self._metadata = read_metadata(self._model_path)
        return self._metadata

    def load_model(self) -> Any:
        if not self._planes:
            return load_bundle(self._model_path, intra_op_threads=self._threads)
        meta = self.metadata  # a broken bundle fails here, at setup, naming its path
        return _LoadingBundle(self._model_path, self._threads, len(meta.bands), meta.alignment)

    def run_inference(
        self, batch: Sequence[np.ndarray], model: Any, inference_args: dict[str, Any] | None = None
    ) -> Iterable[np.ndarray]:
        if len(batch) == 1:
            stacked, pooled = np.asarray(batch[0])[None], None
        else:  # into an aligned buffer, which TensorFlow takes without another copy
            pooled = MODEL_INPUTS.take((len(batch), *np.shape(batch[0])))
            stacked = np.stack(batch, out=pooled, casting="same_kind")
        try:
            stacked = stacked.astype(np.float32, copy=False)
            return list(model.planes(stacked) if self._planes else model(stacked))
        finally:
            if pooled is not None:
                MODEL_INPUTS.give_back(pooled)

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return batch_nbytes(batch)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return dict(self._batch)

    def get_metrics_namespace(self) -> str:
        return "tessera"

    def share_model_across_processes(self) -> bool:
        return False


class _LoadingBundle:
    """The bundle, loaded and warmed on a thread while the first tiles are read.

    Beam loads models in ``setup``, before the stage reads anything; loading the
    SavedModel and tracing the planes function is ~0.4 s of mostly single-threaded
    Python that GDAL's read of the first tile (GIL released) runs beside. The first
    call waits for it and raises what loading raised. (Starting it earlier, while Beam
    builds the pipeline, was slower: both are Python, and sharing the GIL delayed the
    first read by 0.2-0.6 s.)
    """

    def __init__(self, path: str, threads: int | None, bands: int, alignment: int) -> None:
        side = -(-64 // alignment) * alignment
        self._warm_input = np.zeros((1, side, side, bands), dtype=np.float32)
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="tessera-load")
        self._future = self._pool.submit(self._load, path, threads)
        self._pool.shutdown(wait=False)

    def _load(self, path: str, threads: int | None) -> Any:
        bundle = load_bundle(path, intra_op_threads=threads)
        bundle.planes(self._warm_input)  # trace and optimise the graph now, not on tile 1
        return bundle

    @property
    def bundle(self) -> Any:
        return self._future.result()

    def planes(self, batch: np.ndarray) -> np.ndarray:  # the planes mode is its only user
        return self.bundle.planes(batch)  # type: ignore[no-any-return]


def predict_array(model_path: str | None, images: np.ndarray) -> np.ndarray:
    """Run the bundle on a float32 NHWC array in this process (tests, evaluation, bench)."""
    handler = BundleModelHandler(model_path)
    return handler.load_model()(np.asarray(images, dtype=np.float32))
