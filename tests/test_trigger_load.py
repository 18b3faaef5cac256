"""Load: 1,000 concurrent events against a real uvicorn server on loopback.

30 % duplicates (shuffled, so they race their originals, through all three event shapes),
5 % malformed. Every unique object gets exactly one job, every malformed request a 4xx,
nothing a 5xx. The launcher only records submissions (Beam is not under test here);
admission reads real GeoTIFF headers.
"""

from __future__ import annotations

import pytest

from benchmarks.trigger_bench import measure


@pytest.mark.timeout(120)
def test_thousand_events_exactly_once(tmp_path) -> None:
    report = measure(1000, workdir=str(tmp_path))
    assert report["n_events"] == 1000 and report["unique_objects"] == 650
    assert report["server_errors"] == 0, report
    assert report["malformed_4xx"] == report["malformed_sent"] == 50, report
    assert report["keys_with_one_job"] == 650, report
    assert report["jobs"] == report["submissions"] == 650, report
    assert report["keys_with_extra_jobs"] == [] and report["keys_without_job"] == []
    # each valid or duplicate event was either the one that got the job (202) or a duplicate (200)
    accepted = report["status_by_kind"]["valid"].get(202, 0) + report["status_by_kind"]["duplicate"].get(202, 0)
    assert accepted == 650
    assert set(report["status_by_kind"]["valid"]) | set(report["status_by_kind"]["duplicate"]) <= {200, 202}
