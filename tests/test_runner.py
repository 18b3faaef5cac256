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
