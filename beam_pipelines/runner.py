"""The Beam pipeline every tessera command builds: the user's runner, or the local one.

Beam 2.77's ``DirectRunner`` (``SwitchingDirectRunner``) first tries Prism, even when
``--runner=DirectRunner`` is explicit: it converts the pipeline, starts a worker pool on
localhost and downloads the Prism binary from GitHub. Offline the download fails and it
falls back to the in-process ``FnApiRunner`` about 1.3 s later (a fifth of a 6144²
``tessera infer`` run's overhead); online it would run the job on Prism instead, a
different runner. tessera's pipelines are batch pipelines the ``FnApiRunner`` runs, so
the DirectRunner name (and no ``--runner`` at all) maps straight to it, with the
provisioning info the DirectRunner gives it. Every other runner passes through as named.

While it runs, Beam's step-time sampler ticks every 10 ms. Its default period ramps up
to 200 ms, and the end of every bundle joins the sampler's sleeping thread, so each
stage longer than a second finished up to 200 ms late: 0.16 s after the inference
stage and 0.11 s after the finalise stage of a 6144^2 ``tessera infer`` run, measured.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions, StandardOptions
from apache_beam.runners.runner import PipelineRunner
from apache_beam.runners.worker import statesampler

DIRECT_NAMES = {"direct", "directrunner", "switchingdirectrunner"}
STATE_SAMPLING_MS = 10
_BEAM_STATE_SAMPLER = statesampler.StateSampler


class _PromptStateSampler(_BEAM_STATE_SAMPLER):  # type: ignore[misc]
    """Beam's sampler at a period of at most 10 ms (its loop runs without the GIL)."""

    def __init__(self, prefix: str, counter_factory: Any, sampling_period_ms: int = STATE_SAMPLING_MS) -> None:
        super().__init__(prefix, counter_factory, min(sampling_period_ms, STATE_SAMPLING_MS))


_swap_lock = threading.Lock()
_swap_depth = 0


@contextlib.contextmanager
def prompt_state_sampling() -> Iterator[None]:
    """Bundle processors created inside (in this process) use ``_PromptStateSampler``.

    Beam's ``BundleProcessor`` looks the class up in ``statesampler`` when it is
    built; pipelines running at once in several threads share one swap."""
    global _swap_depth
    with _swap_lock:
        if _swap_depth == 0:
            statesampler.StateSampler = _PromptStateSampler
        _swap_depth += 1
    try:
        yield
    finally:
        with _swap_lock:
            _swap_depth -= 1
            if _swap_depth == 0:
                statesampler.StateSampler = _BEAM_STATE_SAMPLER


class LocalRunner(PipelineRunner):  # type: ignore[misc]
    """What ``DirectRunner`` runs a batch pipeline on, without its Prism attempt.

    ``--direct_running_mode`` and ``--direct_num_workers`` keep their meaning: the
    ``FnApiRunner`` reads them itself."""

    def run_pipeline(self, pipeline: beam.Pipeline, options: PipelineOptions) -> Any:
        from apache_beam.portability.api import beam_provision_api_pb2
        from apache_beam.runners.portability.fn_api_runner import fn_runner
        from apache_beam.runners.portability.portable_runner import JobServiceHandle

        encoded = JobServiceHandle.encode_pipeline_options(options.get_all_options())
        info = fn_runner.ExtendedProvisionInfo(beam_provision_api_pb2.ProvisionInfo(pipeline_options=encoded))
        with prompt_state_sampling():
            return fn_runner.FnApiRunner(provision_info=info).run_pipeline(pipeline, options)


def pipeline_options(beam_args: list[str] | None, **overrides: Any) -> PipelineOptions:
    """Beam options from the command line's leftovers; the runner defaults to DirectRunner."""
    args = list(beam_args or [])
    if not any(a == "--runner" or a.startswith("--runner=") for a in args):
        args.insert(0, "--runner=DirectRunner")
    return PipelineOptions(args, **overrides)


def is_local(options: PipelineOptions) -> bool:
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    return isinstance(runner, str) and runner.rsplit(".", 1)[-1].lower() in DIRECT_NAMES


def make_pipeline(options: PipelineOptions) -> beam.Pipeline:
    return beam.Pipeline(runner=LocalRunner() if is_local(options) else None, options=options)
