"""The ledger: which object versions have a job, and what became of each job.

The claim is the whole of exactly-once: ``claim(job)`` atomically creates the record for
``(key, product)`` if, and only if, there is none. Everything before it (duplicate
pre-checks, admission) is an optimisation; everything after it is done by the one caller
whose claim succeeded.

* ``SqliteLedger`` (``sqlite:///path``): WAL mode; the claim is an INSERT into a table
  whose primary key is the job id, a hash of ``(key, product)``; the loser gets an
  IntegrityError. Safe across threads and processes on one machine.
* ``GcsLedger`` (``gs://state-bucket/prefix``): one marker object per job, created with
  ``ifGenerationMatch=0`` (gcsfs ``pipe_file(..., mode="create")``); the loser gets HTTP
  412, which gcsfs raises as ``FileExistsError``. The marker carries a random claim token:
  if gcsfs retried a create whose first attempt had succeeded, the 412 is our own write,
  and reading the token back tells us so. Updates overwrite the marker (one owner).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import os
import socket
import sqlite3
import threading
import uuid
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import fsspec

from transforms.core.errors import ConfigError

STATES = ("queued", "running", "succeeded", "failed", "quarantined")
OWNER = f"{socket.gethostname()}:{os.getpid()}"
QUARANTINE_PRODUCT = "-"  # the product column of a quarantine record (no product applies)


def now() -> str:
    return dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")


def job_id_for(key: str, product: str) -> str:
    """Deterministic, so a retried submission finds the same id (and K8s Job name)."""
    return hashlib.sha256(f"{key}\n{product}".encode()).hexdigest()[:20]


@dataclass(frozen=True)
class Job:
    id: str
    key: str
    url: str
    product: str
    state: str
    created: str
    updated: str
    error: str | None = None
    output: str | None = None
    started: str | None = None
    finished: str | None = None
    launcher: str | None = None
    external_id: str | None = None
    owner: str | None = None  # host:pid of the process that claimed it
    source: dict[str, Any] = field(default_factory=dict)

    @classmethod
    def new(cls, key: str, url: str, product: str, state: str = "queued", **kw: Any) -> Job:
        stamp = now()
        return cls(id=job_id_for(key, product), key=key, url=url, product=product,
                   state=state, created=stamp, updated=stamp, owner=OWNER, **kw)

    def owner_gone(self) -> bool:
        """True when the claiming process ran on this host and is no longer alive."""
        host, _, pid = (self.owner or "").rpartition(":")
        if host != socket.gethostname() or not pid.isdigit():
            return False
        if int(pid) == os.getpid():
            return False
        try:
            os.kill(int(pid), 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, raw: dict[str, Any]) -> Job:
        names = {f.name for f in dataclasses.fields(cls)}
        return cls(**{k: v for k, v in raw.items() if k in names})


_UPDATABLE = {"state", "error", "output", "started", "finished", "launcher", "external_id"}


class Ledger(Protocol):
    def claim(self, job: Job) -> bool:
        """Record ``job`` if no job has its id; True if this call created it."""

    def get(self, job_id: str) -> Job | None: ...

    def find(self, key: str) -> list[Job]:
        """Every record for one ``URL#generation``."""

    def update(self, job_id: str, **changes: Any) -> Job: ...

    def list(self, *, state: str | None = None, limit: int = 100) -> list[Job]: ...

    def counts(self) -> dict[str, int]: ...

    def close(self) -> None: ...


def _check_changes(changes: dict[str, Any]) -> None:
    bad = set(changes) - _UPDATABLE
    if bad:
        raise ValueError(f"cannot update job fields {sorted(bad)}")
    if "state" in changes and changes["state"] not in STATES:
        raise ValueError(f"unknown job state {changes['state']!r}; one of {STATES}")


class SqliteLedger:
    _SCHEMA = """
    CREATE TABLE IF NOT EXISTS jobs (
        id TEXT PRIMARY KEY,
        key TEXT NOT NULL,
        product TEXT NOT NULL,
        url TEXT NOT NULL,
        state TEXT NOT NULL,
        created TEXT NOT NULL,
        updated TEXT NOT NULL,
        body TEXT NOT NULL,
        UNIQUE (key, product)
    );
    CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
    CREATE INDEX IF NOT EXISTS jobs_created ON jobs (created);
    """

    def __init__(self, path: str | Path) -> None:
        self.path = str(path)
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        with self._conn() as conn:
            conn.executescript(self._SCHEMA)

    def _conn(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # One connection per thread; autocommit, explicit transactions where needed.
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def claim(self, job: Job) -> bool:
        try:
            self._conn().execute(
                "INSERT INTO jobs (id, key, product, url, state, created, updated, body) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (job.id, job.key, job.product, job.url, job.state, job.created, job.updated,
                 json.dumps(job.to_dict())),
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def get(self, job_id: str) -> Job | None:
        row = self._conn().execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return Job.from_dict(json.loads(row[0])) if row else None

    def find(self, key: str) -> list[Job]:
        rows = self._conn().execute("SELECT body FROM jobs WHERE key = ? ORDER BY product", (key,))
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def update(self, job_id: str, **changes: Any) -> Job:
        _check_changes(changes)
        conn = self._conn()
        conn.execute("BEGIN IMMEDIATE")
        try:
            row = conn.execute("SELECT body FROM jobs WHERE id = ?", (job_id,)).fetchone()
            if row is None:
                raise KeyError(job_id)
            job = dataclasses.replace(Job.from_dict(json.loads(row[0])), updated=now(), **changes)
            conn.execute("UPDATE jobs SET state = ?, updated = ?, body = ? WHERE id = ?",
                         (job.state, job.updated, json.dumps(job.to_dict()), job_id))
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        return job

    def list(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        sql, args = "SELECT body FROM jobs", []
        if state:
            sql, args = sql + " WHERE state = ?", [state]
        rows = self._conn().execute(sql + " ORDER BY created DESC, id LIMIT ?", (*args, limit))
        return [Job.from_dict(json.loads(r[0])) for r in rows]

    def counts(self) -> dict[str, int]:
        rows = self._conn().execute("SELECT state, COUNT(*) FROM jobs GROUP BY state")
        return {state: 0 for state in STATES} | dict(rows.fetchall())

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None


class GcsLedger:
    """Marker objects ``{prefix}/jobs/{id}.json`` in a state bucket (any gcsfs endpoint)."""

    def __init__(self, url: str, fs: Any = None) -> None:
        if fs is None:
            fs, root = fsspec.core.url_to_fs(url)
        else:
            root = url.split("://", 1)[-1]
        self.fs = fs
        self.url = url
        self.root = root.rstrip("/")
        self._lock = threading.Lock()

    def _path(self, job_id: str) -> str:
        return f"{self.root}/jobs/{job_id}.json"

    def _read(self, path: str) -> dict[str, Any] | None:
        try:
            raw: dict[str, Any] = json.loads(self.fs.cat_file(path))
            return raw
        except FileNotFoundError:
            return None

    def claim(self, job: Job) -> bool:
        token = uuid.uuid4().hex
        body = json.dumps({**job.to_dict(), "claim_token": token}).encode()
        try:
            self.fs.pipe_file(self._path(job.id), body, mode="create")  # ifGenerationMatch=0
        except FileExistsError:
            existing = self._read(self._path(job.id)) or {}
            return existing.get("claim_token") == token  # our own retried create
        return True

    def get(self, job_id: str) -> Job | None:
        raw = self._read(self._path(job_id))
        return Job.from_dict(raw) if raw else None

    def find(self, key: str) -> list[Job]:
        # The product set is open, so look up by listing; duplicates are rare enough.
        return [j for j in self._all() if j.key == key]

    def update(self, job_id: str, **changes: Any) -> Job:
        _check_changes(changes)
        with self._lock:
            raw = self._read(self._path(job_id))
            if raw is None:
                raise KeyError(job_id)
            job = dataclasses.replace(Job.from_dict(raw), updated=now(), **changes)
            body = {**job.to_dict(), "claim_token": raw.get("claim_token")}
            self.fs.pipe_file(self._path(job_id), json.dumps(body).encode())
        return job

    def _all(self) -> Iterable[Job]:
        try:
            paths = self.fs.ls(f"{self.root}/jobs", detail=False, refresh=True)
        except FileNotFoundError:
            return []
        paths = [p for p in paths if p.endswith(".json")]
        blobs = self.fs.cat(paths, on_error="omit") if paths else {}
        return [Job.from_dict(json.loads(b)) for b in blobs.values()]

    def list(self, *, state: str | None = None, limit: int = 100) -> list[Job]:
        jobs = [j for j in self._all() if state is None or j.state == state]
        return sorted(jobs, key=lambda j: (j.created, j.id), reverse=True)[:limit]

    def counts(self) -> dict[str, int]:
        return {state: 0 for state in STATES} | dict(Counter(j.state for j in self._all()))

    def close(self) -> None:
        pass


def open_ledger(url: str) -> Ledger:
    """``sqlite:///abs/path.db`` (or a plain ``.db`` path) or ``gs://bucket/prefix``."""
    if url.startswith("sqlite:///"):
        # SQLAlchemy's convention: sqlite:///relative.db, sqlite:////absolute/path.db
        return SqliteLedger(url[len("sqlite:///") :])
    if url.startswith(("gs://", "gcs://")):
        return GcsLedger(url)
    if "://" not in url and url.endswith((".db", ".sqlite", ".sqlite3")):
        return SqliteLedger(url)
    raise ConfigError(f"ledger {url!r}: use sqlite:///path/to/ledger.db or gs://state-bucket/prefix")
