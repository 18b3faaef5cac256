"""Load a bundle's SavedModel into a callable, without Beam.

The in-process Beam handler (``models.handlers.BundleModelHandler``) and the KServe
predictor both need "SavedModel directory -> numpy in, numpy out". This module is that
function and nothing else, so the predictor image does not pull in Apache Beam and both
paths run the very same TensorFlow call.
"""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np

from models.bundle import INPUT_NAME, OUTPUT_NAME, SIGNATURE, read_metadata, resolve_model_path
from transforms.core.errors import BundleError


class LoadedBundle:
    """A loaded ``serving_default`` signature: float32 NHWC in, float32 NHWK out.

    Keeps the loaded object alive next to its concrete function (TF frees the
    variables when the object that owns them goes away).
    """

    def __init__(self, loaded: Any, fn: Any, path: str) -> None:
        self._loaded = loaded
        self._fn = fn
        self.path = path

    def __call__(self, batch: np.ndarray) -> np.ndarray:
        import tensorflow as tf

        return self._fn(**{INPUT_NAME: tf.constant(batch)})[OUTPUT_NAME].numpy()


def load_bundle(
    model_path: str | None = None, *, intra_op_threads: int | None = None
) -> LoadedBundle:
    """Load the bundle's SavedModel; raise ``BundleError`` naming the path if it can't."""
    import tensorflow as tf

    path = resolve_model_path(model_path)
    if intra_op_threads:
        # RuntimeError: TF already initialised in this process; keep its setting.
        with contextlib.suppress(RuntimeError):
            tf.config.threading.set_intra_op_parallelism_threads(intra_op_threads)
    read_metadata(path)  # fail with the contract error before TF does
    try:
        loaded = tf.saved_model.load(path)
    except (OSError, ValueError) as exc:
        raise BundleError(f"cannot load SavedModel from {path}: {exc}") from exc
    if SIGNATURE not in loaded.signatures:
        raise BundleError(f"{path} has no '{SIGNATURE}' signature")
    return LoadedBundle(loaded, loaded.signatures[SIGNATURE], path)
