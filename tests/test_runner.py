"""The local runner: DirectRunner without Beam's Prism attempt; other runners untouched."""

from __future__ import annotations

import logging

import apache_beam as beam
import pytest
from apache_beam.testing.util import assert_that, equal_to

from beam_pipelines.runner import LocalRunner, make_pipeline, pipeline_options


@pytest.mark.parametrize("args", [None, ["--runner=DirectRunner"], ["--runner", "direct"],
                                  ["--runner=apache_beam.runners.direct.direct_runner.DirectRunner"]])
def test_the_direct_runner_runs_on_the_local_runner(args: list[str] | None) -> None:
    p = make_pipeline(pipeline_options(args))
    assert isinstance(p.runner, LocalRunner)


def test_other_runners_pass_through() -> None:
    p = make_pipeline(pipeline_options(["--runner=BundleBasedDirectRunner"]))
    assert not isinstance(p.runner, LocalRunner)
    assert type(p.runner).__name__ == "BundleBasedDirectRunner"


def test_a_pipeline_runs_without_trying_prism(caplog: pytest.LogCaptureFixture) -> None:
    """Beam 2.77's DirectRunner logs 'Running pipeline with PrismRunner' and tries a
    download from GitHub before falling back; the local runner goes straight to work."""
    caplog.set_level(logging.INFO)
    with make_pipeline(pipeline_options(None)) as p:
        doubled = p | beam.Create([1, 2, 3]) | beam.Map(lambda x: 2 * x)
        assert_that(doubled, equal_to([2, 4, 6]))
    assert not [r for r in caplog.records if "prism" in r.getMessage().lower()]


class _RecordSampler(beam.DoFn):
    def process(self, element: int):
        from apache_beam.runners.worker import statesampler

        tracker = statesampler.get_current_tracker()
        yield type(tracker).__name__, tracker.sampling_period_ms


def test_bundles_are_sampled_every_10_ms_and_beam_is_left_as_it_was() -> None:
    """Beam's sampler ramps up to 200 ms and each bundle's end joins its sleeping thread
    (up to 200 ms late per stage); the local runner swaps in a 10 ms one while it runs."""
    from apache_beam.runners.worker import statesampler

    from beam_pipelines import runner

    before = statesampler.StateSampler
    with make_pipeline(pipeline_options(None)) as p:
        seen = p | beam.Create([1]) | beam.ParDo(_RecordSampler())
        assert_that(seen, equal_to([("_PromptStateSampler", runner.STATE_SAMPLING_MS)]))
    assert statesampler.StateSampler is before is runner._BEAM_STATE_SAMPLER
