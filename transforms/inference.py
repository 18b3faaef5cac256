"""Where the model runs: Beam's RunInference over any tessera model handler.

Batches that fail permanently (after the handler's own retries) come out of the
dead-letter output as ``(job key, url, reason)`` per tile, so the scene they belong
to fails loudly instead of being published with holes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.ml.inference.base import KeyedModelHandler, ModelHandler, RunInference


def _dead_letters(failed: tuple[Any, Any]) -> Iterator[tuple[str, str, str]]:
    batch, error = failed
    reason = _describe(error)
    items = batch if isinstance(batch, list | tuple) else [batch]
    for item in items:
        key = item[0] if isinstance(item, tuple) else item
        task = getattr(key, "task", None)
        if task is not None:
            yield task.job.key, task.job.scene.url, f"{task.job.scene.url}: tile {task.index}: {reason}"


def _describe(error: Any) -> str:
    if isinstance(error, BaseException):
        return f"{type(error).__name__}: {error}"
    if isinstance(error, tuple) and len(error) >= 2:
        return f"{getattr(error[0], '__name__', error[0])}: {error[1]}"
    return str(error)


@dataclass
class RunModel(beam.PTransform):
    """``(TileInput, image)`` -> ``(TileInput, probabilities)``; output ``failed``."""

    handler: ModelHandler

    def expand(self, tiles: beam.PCollection) -> pvalue.PCollection:
        main, other = tiles | RunInference(KeyedModelHandler(self.handler)).with_exception_handling()
        failed = other.failed_inferences | "DeadLetters" >> beam.FlatMap(_dead_letters)
        return main, failed
