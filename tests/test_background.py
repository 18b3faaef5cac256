"""The background thread reads and staging run on: low priority, results in order."""

from __future__ import annotations

import os
import sys
import threading
import time
from typing import Any

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to
from apache_beam.transforms import window as beam_window

from beam_pipelines.runner import make_pipeline, pipeline_options
from transforms.background import BACKGROUND_NICE, InOrder, windowed


def _nice() -> int:
    return os.getpriority(os.PRIO_PROCESS, threading.get_native_id())


@pytest.mark.skipif(sys.platform != "linux", reason="per-thread nice is Linux's")
def test_the_background_thread_runs_at_nice_19_and_the_caller_keeps_its_priority() -> None:
    before = _nice()
    work = InOrder("test-bg", ahead=0)
    work.submit(_nice, timestamp=0, window=None)
    [(background, _, _)] = list(work.drain())
    work.shutdown()
    assert background == BACKGROUND_NICE
    assert _nice() == before


def test_results_come_back_in_submission_order_with_their_stamps() -> None:
    work = InOrder("test-bg", ahead=2)

    def slow_first(i: int) -> int:
        time.sleep(0.05 if i == 0 else 0.0)
        return i * 10

    got: list[tuple[Any, Any, Any]] = []
    for i in range(5):
        work.submit(slow_first, i, timestamp=i, window=f"w{i}")
        ready = list(work.ready())
        assert len(ready) == max(0, min(1, i - 1))  # never more than `ahead` left pending
        got += ready
    got += list(work.drain())
    work.shutdown()
    assert got == [(i * 10, i, f"w{i}") for i in range(5)]


def test_eager_hands_back_finished_results_and_errors_reach_the_caller() -> None:
    work = InOrder("test-bg", ahead=5)
    work.submit(lambda: 1, timestamp=0, window=None)
    deadline = time.monotonic() + 5
    ready: list[Any] = []
    while not ready and time.monotonic() < deadline:
        ready = list(work.ready(eager=True))
    assert ready == [(1, 0, None)]

    def fail() -> None:
        raise OSError("disk full")

    work.submit(fail, timestamp=0, window=None)
    with pytest.raises(OSError, match="disk full"):
        list(work.drain())
    work.shutdown()


class _Later(beam.DoFn):
    """A DoFn that emits each element's result while processing the next one."""

    def setup(self) -> None:
        self._work = InOrder("test-bg", ahead=1)

    def start_bundle(self) -> None:
        self._work.clear()

    def process(self, x: int, timestamp: Any = beam.DoFn.TimestampParam, window: Any = beam.DoFn.WindowParam):
        self._work.submit(lambda v: v * 2, x, timestamp=timestamp, window=window)
        for out, ts, w in self._work.ready():
            yield windowed(out, ts, w)

    def finish_bundle(self):
        for out, ts, w in self._work.drain():
            yield windowed(out, ts, w)

    def teardown(self) -> None:
        self._work.shutdown()


def test_results_keep_their_elements_windows_in_a_pipeline() -> None:
    """Emitted one element late, each result still lands in its own element's window."""
    with make_pipeline(pipeline_options(None)) as p:
        doubled = (
            p
            | beam.Create([1, 2, 3, 11, 12])
            | beam.Map(lambda x: beam_window.TimestampedValue(x, x))
            | beam.WindowInto(beam_window.FixedWindows(10))
            | beam.ParDo(_Later())
            | beam.combiners.ToList().without_defaults()
            | beam.Map(sorted)
        )
        assert_that(doubled, equal_to([[2, 4, 6], [22, 24]]))
