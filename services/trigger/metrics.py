"""Prometheus metrics, one ``CollectorRegistry`` per service instance (tests build several).

Jobs by state are read from the ledger at scrape time, so they are right after a restart
and across replicas sharing a ledger; the counters are this process's.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

PREFIX = "tessera_trigger"


class _JobsByState(Collector):
    def __init__(self, counts: Callable[[], dict[str, int]]) -> None:
        self._counts = counts

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(f"{PREFIX}_jobs", "Jobs in the ledger by state", labels=["state"])
        for state, count in sorted(self._counts().items()):
            family.add_metric([state], count)
        yield family


class TriggerMetrics:
    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        r = self.registry
        self.events = Counter(f"{PREFIX}_events_received", "Events received, by source kind",
                              ["kind"], registry=r)
        self.rejected = Counter(f"{PREFIX}_requests_rejected", "Requests refused, by HTTP status",
                                ["status"], registry=r)
        self.ignored = Counter(f"{PREFIX}_events_ignored", "Well-formed events that are not finalisations",
                               registry=r)
        self.duplicates = Counter(f"{PREFIX}_duplicates", "Arrivals whose URL#generation already had a job",
                                  registry=r)
        self.quarantined = Counter(f"{PREFIX}_quarantined", "Objects quarantined, by reason",
                                   ["reason"], registry=r)
        self.transitions = Counter(f"{PREFIX}_job_transitions", "Job state changes recorded, by new state",
                                   ["state"], registry=r)
        self.admission = Histogram(
            f"{PREFIX}_admission_seconds", "Time from a parsed event to its outcome (admission + claim)",
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
            registry=r,
        )

    def watch_ledger(self, counts: Callable[[], dict[str, int]]) -> None:
        self.registry.register(_JobsByState(counts))

    def render(self) -> bytes:
        return generate_latest(self.registry)
