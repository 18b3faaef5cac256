"""Work a DoFn runs beside the model on one background thread, handed back in order.

Reading the next tile and staging the last one overlap the model's call on the
current tile. On a CPU worker the model keeps every core busy, so the background
thread runs at the lowest CPU priority (Linux: a per-thread nice of 19): it takes the
cycles the model leaves idle instead of preempting one of the model's threads, which
stalls the model's other threads at the end of each op. When the model waits for the
background work, the cores are free and it runs at full speed.
"""

from __future__ import annotations

import contextlib
import os
import sys
import threading
from collections import deque
from collections.abc import Callable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from apache_beam import pvalue
from apache_beam.utils.windowed_value import WindowedValue

BACKGROUND_NICE = 19


def yield_to_foreground() -> None:
    """Lower the calling thread's CPU priority to nice 19 (Linux only: there nice is per
    thread; elsewhere it would apply to the whole process, so nothing changes)."""
    if sys.platform != "linux":
        return
    with contextlib.suppress(OSError):  # not permitted here: keep the default priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), BACKGROUND_NICE)


def windowed(out: Any, timestamp: Any, window: Any) -> Any:
    """``out`` (a value or a ``TaggedOutput``) re-stamped with its element's timestamp and
    window, for emitting it while another element (or none) is being processed."""
    if isinstance(out, pvalue.TaggedOutput):
        return pvalue.TaggedOutput(out.tag, WindowedValue(out.value, timestamp, [window]))
    return WindowedValue(out, timestamp, [window])


class InOrder:
    """Calls submitted from a DoFn run one at a time on a low-priority thread; their
    results come back in submission order with the element's timestamp and window.

    ``ready()`` yields results while more than ``ahead`` calls are pending (blocking on
    the oldest), and with ``eager`` also any finished ones; ``drain()`` yields them all.
    """

    def __init__(self, name: str, ahead: int) -> None:
        self.ahead = ahead
        self._pool = ThreadPoolExecutor(1, thread_name_prefix=name, initializer=yield_to_foreground)
        self._pending: deque[tuple[Future[Any], Any, Any]] = deque()

    def submit(self, fn: Callable[..., Any], *args: Any, timestamp: Any, window: Any) -> None:
        self._pending.append((self._pool.submit(fn, *args), timestamp, window))

    def ready(self, *, eager: bool = False) -> Iterator[tuple[Any, Any, Any]]:
        while self._pending and (len(self._pending) > self.ahead or (eager and self._pending[0][0].done())):
            yield self._pop()

    def drain(self) -> Iterator[tuple[Any, Any, Any]]:
        while self._pending:
            yield self._pop()

    def _pop(self) -> tuple[Any, Any, Any]:
        future, timestamp, window = self._pending.popleft()
        return future.result(), timestamp, window

    def clear(self) -> None:
        self._pending.clear()

    def shutdown(self) -> None:
        self._pool.shutdown(wait=True)
