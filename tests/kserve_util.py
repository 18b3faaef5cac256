"""Real KServe predictors and a fault-injecting proxy on loopback, for tests and the bench.

``Predictor`` runs ``python -m tessera serve model`` in a subprocess on a free
127.0.0.1 port; ``FaultProxy`` sits between a client and it and, from a seeded random
stream, answers 503 to some requests and holds others past the client's deadline.
"""

from __future__ import annotations

import atexit
import contextlib
import http.client
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import requests

from tessera.ports import free_port

REPO = Path(__file__).resolve().parent.parent


class Predictor:
    """``tessera serve model`` as a subprocess; ``start()`` waits until it is ready."""

    def __init__(
        self,
        model: str,
        *,
        name: str | None = None,
        port: int | None = None,
        log: Path | None = None,
    ) -> None:
        self.model = model
        self.name = name
        self.port = port or free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log
        self.statuses: list[int] = []  # readiness answers seen while starting
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: Any = None

    def start(self, timeout_s: float = 180.0) -> Predictor:
        cmd = [sys.executable, "-m", "tessera", "serve", "model", "--model", self.model]
        cmd += ["--host", "127.0.0.1", "--port", str(self.port)]
        if self.name:
            cmd += ["--name", self.name]
        env = {
            **os.environ,
            "TF_CPP_MIN_LOG_LEVEL": "2",
            "CUDA_VISIBLE_DEVICES": os.environ.get("CUDA_VISIBLE_DEVICES", ""),
        }
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
        self._log = open(self.log_path, "wb") if self.log_path else subprocess.DEVNULL  # noqa: SIM115
        self._proc = subprocess.Popen(
            cmd, cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"predictor exited with {self._proc.returncode}: {self.tail()}")
            try:
                status = requests.get(f"{self.url}/v2/health/ready", timeout=5).status_code
            except requests.ConnectionError:
                status = 0
            except requests.Timeout:
                # loading TF in the server's background thread can hold the GIL for seconds
                status = -1
            if not self.statuses or self.statuses[-1] != status:
                self.statuses.append(status)
            if status == 200:
                return self
            time.sleep(0.2)
        self.stop()
        raise TimeoutError(f"predictor at {self.url} not ready after {timeout_s} s: {self.tail()}")

    def tail(self, chars: int = 3000) -> str:
        if self.log_path and self.log_path.exists():
            return self.log_path.read_text(errors="replace")[-chars:]
        return "(no log)"

    def stop(self) -> int | None:
        if self._proc is None:
            return None
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGTERM)
            try:
                self._proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(timeout=10)
        if self._log not in (None, subprocess.DEVNULL):
            self._log.close()
        code = self._proc.returncode
        self._proc = None
        return code

    def __enter__(self) -> Predictor:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


_SHARED: dict[str, Predictor] = {}


def shared_predictor(model: str) -> Predictor:
    """One predictor per bundle for the whole test process (starting one costs a TF
    start-up), stopped when the interpreter exits."""
    if model not in _SHARED:
        log = Path(tempfile.mkdtemp(prefix="tessera-predictor-")) / "predictor.log"
        _SHARED[model] = Predictor(model, log=log).start()
        atexit.register(_SHARED[model].stop)
    return _SHARED[model]


class FaultProxy:
    """A loopback HTTP/1.1 proxy that injects faults from a seeded random stream.

    Each request draws once: below ``p_503`` it gets a 503 without reaching the
    upstream; below ``p_503 + p_delay`` it is held ``delay_s`` before being forwarded
    (past the client's deadline when ``delay_s`` exceeds it); otherwise it goes straight
    through. ``counts`` says what happened.
    """

    def __init__(
        self,
        upstream: str,
        *,
        p_503: float = 0.0,
        p_delay: float = 0.0,
        delay_s: float = 0.0,
        seed: int = 0,
    ) -> None:
        host, _, port = upstream.removeprefix("http://").rstrip("/").partition(":")
        self.upstream = (host, int(port))
        self.p_503, self.p_delay, self.delay_s = p_503, p_delay, delay_s
        self.counts: Counter[str] = Counter()
        self._rng = random.Random(seed)
        self._lock = threading.Lock()
        self._connections: set[socket.socket] = set()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), self._handler_class())
        self._server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="fault-proxy", daemon=True
        )

    def draw(self) -> str:
        with self._lock:
            r = self._rng.random()
        if r < self.p_503:
            return "503"
        if r < self.p_503 + self.p_delay:
            return "delayed"
        return "forwarded"

    def _handler_class(self) -> type[BaseHTTPRequestHandler]:
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def setup(self) -> None:
                super().setup()
                with proxy._lock:
                    proxy._connections.add(self.connection)

            def finish(self) -> None:
                with proxy._lock:
                    proxy._connections.discard(self.connection)
                super().finish()

            def _relay(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(length) if length else None
                fate = proxy.draw()
                with proxy._lock:
                    proxy.counts[fate] += 1
                    proxy.counts["requests"] += 1
                    proxy.counts[self.command] += 1
                if fate == "503":
                    self._answer(
                        503, {"Content-Type": "application/json"}, b'{"error": "injected"}'
                    )
                    return
                if fate == "delayed":
                    time.sleep(proxy.delay_s)
                conn = http.client.HTTPConnection(*proxy.upstream, timeout=60)
                try:
                    headers = {
                        k: v
                        for k, v in self.headers.items()
                        if k.lower() not in ("host", "connection")
                    }
                    conn.request(self.command, self.path, body=body, headers=headers)
                    upstream = conn.getresponse()
                    payload = upstream.read()
                    keep = {
                        k: v
                        for k, v in upstream.getheaders()
                        if k.lower() not in ("content-length", "connection", "transfer-encoding")
                    }
                    self._answer(upstream.status, keep, payload)
                finally:
                    conn.close()

            def _answer(self, status: int, headers: dict[str, str], payload: bytes) -> None:
                try:
                    self.send_response(status)
                    for k, v in headers.items():
                        self.send_header(k, v)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                except (BrokenPipeError, ConnectionResetError):
                    self.close_connection = True  # the client gave up (deadline): fine

            do_GET = do_POST = _relay

        return Handler

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop listening and cut open keep-alive connections: the server is gone."""
        self._server.shutdown()
        self._server.server_close()
        with self._lock:
            for conn in list(self._connections):
                with contextlib.suppress(OSError):
                    conn.shutdown(socket.SHUT_RDWR)
        self._thread.join(timeout=5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
