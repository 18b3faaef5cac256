"""Where the model runs: one DoFn over any tessera model handler (in-process or KServe).

Tiles are batched here, up to the handler's ``max_batch_size``, and a full batch runs at
once. (Beam's ``RunInference`` batches with ``BatchElements``, which holds each batch
until the *next* element arrives, and wraps every answer in a ``PredictionResult`` that
keeps the input tile alive; with tiles of 100+ MB both cost time and memory.) The model
is loaded once per worker process and shared by its threads (``shared.Shared``).

A batch that fails (after the handler's own retries) comes out of the ``failed`` output
as ``(job key, url, reason)`` per tile, so the scene it belongs to fails loudly instead
of being published with holes.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler
from apache_beam.utils import shared
from apache_beam.utils.windowed_value import WindowedValue

from transforms.core.buffers import MODEL_INPUTS
from transforms.plan import FAILED
from transforms.read import TILE_ARRAY

_MODELS = shared.Shared()  # one loaded model per worker process and handler


class _Model:
    """A weak-referenceable holder (``shared.Shared`` keeps weak references)."""

    def __init__(self, model: Any) -> None:
        self.model = model


def describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}"


class _RunModel(beam.DoFn):
    def __init__(self, handler: ModelHandler) -> None:
        self.handler = handler
        self.tag = uuid.uuid4().hex  # pickled with the DoFn: one model per worker process
        self.max_batch = int(handler.batch_elements_kwargs().get("max_batch_size", 1))
        self.tiles = Metrics.counter("tessera", "tiles_inferred")
        self.batches = Metrics.counter("tessera", "model_batches")
        self.failed = Metrics.counter("tessera", "tiles_failed_inference")
        self.latency = Metrics.distribution("tessera", "inference_ms")

    def setup(self) -> None:
        self._holder = _MODELS.acquire(lambda: _Model(self.handler.load_model()), tag=self.tag)
        self._batch: list[tuple[Any, Any, Any]] = []

    def start_bundle(self) -> None:
        self._batch = []

    def process(
        self, element: Any, timestamp: Any = beam.DoFn.TimestampParam, window: Any = beam.DoFn.WindowParam
    ) -> Iterator[Any]:
        self._batch.append((element, timestamp, window))
        if len(self._batch) >= self.max_batch:
            yield from self._flush()

    def finish_bundle(self) -> Iterator[Any]:
        yield from self._flush()

    def _flush(self) -> Iterator[Any]:
        items, self._batch = self._batch, []
        if not items:
            return
        start = time.perf_counter()
        inputs = [e[0][1] for e in items]
        try:
            answers = list(self.handler.run_inference(inputs, self._holder.model))
            if len(answers) != len(items):
                raise RuntimeError(f"the model answered {len(answers)} tiles for {len(items)}")
        except Exception as exc:  # dead-lettered per tile: the scene fails, the job goes on
            reason = describe(exc)
            for (key, _), timestamp, window in items:
                self.failed.inc()
                task = key.task
                record = (task.job.key, task.job.scene.url, f"{task.job.scene.url}: tile {task.index}: {reason}")
                yield pvalue.TaggedOutput(FAILED, WindowedValue(record, timestamp, [window]))
            return
        finally:  # the model is done with them: the reading step fills them again
            for array in inputs:
                MODEL_INPUTS.give_back(array)
        self.latency.update(int((time.perf_counter() - start) * 1000))
        self.batches.inc()
        self.tiles.inc(len(items))
        for ((key, _), timestamp, window), answer in zip(items, answers, strict=True):
            yield WindowedValue((key, answer), timestamp, [window])


@dataclass
class RunModel(beam.PTransform):
    """``(TileInput, image)`` -> ``(TileInput, planes)`` (whatever the handler answers per
    tile); output ``failed`` as ``(job key, url, reason)``."""

    handler: ModelHandler

    def expand(self, tiles: beam.PCollection) -> tuple[beam.PCollection, beam.PCollection]:
        results = tiles | beam.ParDo(_RunModel(self.handler)).with_output_types(TILE_ARRAY).with_outputs(
            FAILED, main="predicted"
        )
        return results.predicted, results[FAILED]
