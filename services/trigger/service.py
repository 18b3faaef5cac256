"""The arrival path shared by ``POST /`` and ``tessera watch``: dedupe, admit, claim, launch."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any

from services.trigger.admission import Admitted, Admitter
from services.trigger.events import Arrival
from services.trigger.launchers import Launcher
from services.trigger.ledger import QUARANTINE_PRODUCT, Job, Ledger, now
from services.trigger.metrics import TriggerMetrics

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    status: str  # accepted | duplicate | quarantined
    jobs: tuple[Job, ...]
    reason: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "jobs": [j.id for j in self.jobs]}
        if self.reason:
            out["reason"] = self.reason
        return out


class TriggerService:
    def __init__(self, ledger: Ledger, launcher: Launcher, admitter: Admitter,
                 metrics: TriggerMetrics | None = None) -> None:
        self.ledger = ledger
        self.launcher = launcher
        self.admitter = admitter
        self.metrics = metrics or TriggerMetrics()
        self.metrics.watch_ledger(ledger.counts)
        launcher.bind(self._record)

    def _record(self, job_id: str, **changes: Any) -> Job:
        job = self.ledger.update(job_id, **changes)
        if "state" in changes:
            self.metrics.transitions.labels(changes["state"]).inc()
            log.info("job %s (%s, %s): %s %s", job.id, job.url, job.product, job.state, job.error or "")
        return job

    def handle(self, arrival: Arrival) -> Outcome:
        """Exactly one job per (``URL#generation``, product): the ledger claim decides."""
        started = time.perf_counter()
        try:
            return self._handle(arrival)
        finally:
            self.metrics.admission.observe(time.perf_counter() - started)

    def _duplicate(self, arrival: Arrival, jobs: list[Job]) -> Outcome:
        self.metrics.duplicates.inc()
        log.info("duplicate arrival %s (%s)", arrival.key, arrival.kind)
        return Outcome("duplicate", tuple(jobs))

    def _handle(self, arrival: Arrival) -> Outcome:
        existing = self.ledger.find(arrival.key)
        if existing:  # cheap pre-check; the claim below is what guarantees exactly-once
            return self._duplicate(arrival, existing)
        source = {"bucket": arrival.bucket, "name": arrival.name, "generation": arrival.generation,
                  "size": arrival.size, "crc32c": arrival.crc32c, "kind": arrival.kind,
                  "event_id": arrival.event_id}
        result = self.admitter.admit(arrival)
        if not isinstance(result, Admitted):
            job = Job.new(arrival.key, arrival.url, QUARANTINE_PRODUCT, state="quarantined",
                          error=f"{result.code}: {result.reason}", finished=now(), source=source)
            if not self.ledger.claim(job):
                return self._duplicate(arrival, self.ledger.find(arrival.key))
            self.metrics.quarantined.labels(result.code).inc()
            self.metrics.transitions.labels("quarantined").inc()
            log.warning("quarantined %s: %s", arrival.key, result.reason)
            return Outcome("quarantined", (job,), result.reason)
        claimed = []
        for product in result.products:
            job = Job.new(arrival.key, arrival.url, product, source=source)
            if self.ledger.claim(job):
                claimed.append(job)
        if not claimed:
            return self._duplicate(arrival, self.ledger.find(arrival.key))
        for job in claimed:
            self.metrics.transitions.labels("queued").inc()
            self._submit(job)
        return Outcome("accepted", tuple(claimed))

    def _submit(self, job: Job) -> None:
        try:
            self.launcher.submit(job)
        except Exception as exc:  # the claim stands; the record says why nothing ran
            log.exception("launcher %s could not take job %s", self.launcher.name, job.id)
            self._record(job.id, state="failed", finished=now(), error=f"submission failed: {exc}")

    def resume(self) -> int:
        """Resubmit jobs a previous process claimed but did not finish (if the launcher may)."""
        count = 0
        for state in ("queued", "running"):
            for job in self.ledger.list(state=state, limit=100_000):
                if self.launcher.resumable(job):
                    log.warning("resuming job %s (%s) left %s by a previous run", job.id, job.url, state)
                    self._submit(job)
                    count += 1
        return count

    def close(self) -> None:
        self.launcher.close()
        self.ledger.close()
