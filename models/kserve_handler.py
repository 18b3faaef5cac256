"""Where the model runs when it runs remotely: a Beam ModelHandler over KServe V2 REST.

Same element types as ``BundleModelHandler``: a float32 ``(H, W, C)`` raw tile in, a
float32 ``(H, W, K)`` probability tile out (or, with ``planes=True``, the uint8 class and
confidence planes, computed here by the same graph as in-process), so the pipeline
swaps one for the other.
Tensors travel with the V2 binary tensor extension (a JSON header, then raw
little-endian bytes, ``Inference-Header-Content-Length`` saying where the JSON ends).

Failures: 429, 5xx, timeouts and connection errors are retried with exponential backoff
and full jitter, each attempt under its own deadline; after the last attempt the handler
raises ``RemoteModelError`` naming the URL and the last status. Raising is the contract:
RunInference's ``.with_exception_handling()`` turns it into a dead-letter record and the
scene fails loudly with nothing published.
"""

from __future__ import annotations

import json
import random
import time
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import requests
from apache_beam.metrics import Metrics
from apache_beam.ml.inference.base import ModelHandler

from models.bundle import INPUT_NAME, OUTPUT_NAME, BundleMetadata
from models.bundle_runtime import batch_nbytes, probabilities_to_planes
from transforms.core.errors import BundleError, ConfigError, RemoteModelError

NAMESPACE = "tessera"
HEADER_LENGTH = "Inference-Header-Content-Length"
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})
MAX_BACKOFF_S = 10.0
DEFAULT_MAX_REQUEST_BYTES = 32 * 2**20  # well under any ingress/KServe body limit

_REQUESTS = Metrics.counter(NAMESPACE, "kserve_requests")
_RETRIES = Metrics.counter(NAMESPACE, "kserve_retries")
_FAILURES = Metrics.counter(NAMESPACE, "kserve_failures")
_LATENCY_MS = Metrics.distribution(NAMESPACE, "kserve_request_ms")


class _Retryable(Exception):
    """One attempt failed in a way worth another try; ``status`` says how."""

    def __init__(self, status: str) -> None:
        super().__init__(status)
        self.status = status


@dataclass(frozen=True)
class Reply:
    """One HTTP answer, body read in full."""

    status: int
    reason: str
    headers: Any
    content: bytes

    def text(self, limit: int = 200) -> str:
        text = self.content[: limit + 1].decode("utf-8", "replace")
        return text[:limit] + "..." if len(text) > limit else text


@dataclass(frozen=True)
class RetryPolicy:
    retries: int = 5
    backoff_s: float = 0.2
    timeout_s: float = 30.0

    def __post_init__(self) -> None:
        if self.retries < 0:
            raise ConfigError(f"retries must be >= 0, got {self.retries}")
        if self.backoff_s < 0:
            raise ConfigError(f"backoff_s must be >= 0, got {self.backoff_s}")
        if self.timeout_s <= 0:
            raise ConfigError(f"timeout_s must be > 0, got {self.timeout_s}")

    def delay(self, attempt: int, rng: random.Random) -> float:
        """Full jitter: uniform in [0, min(cap, base * 2**attempt)]."""
        return rng.uniform(0.0, min(MAX_BACKOFF_S, self.backoff_s * 2**attempt))


class RemoteModel:
    """A connection to one model on one V2 server: what ``load_model`` returns.

    One ``requests.Session`` (keep-alive connection pool) per loaded model; urllib3's
    pool is thread-safe, so RunInference threads sharing this object reuse connections.
    """

    def __init__(
        self,
        url: str,
        model_name: str,
        policy: RetryPolicy,
        *,
        binary: bool = True,
        max_batch_size: int = 8,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        seed: int | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.model_name = model_name
        self.policy = policy
        self.binary = binary
        self.max_batch_size = max_batch_size
        self.max_request_bytes = max_request_bytes
        self.bands: int | None = None
        self.classes: int | None = None
        self._rng = random.Random(seed)
        self.session = requests.Session()
        adapter = requests.adapters.HTTPAdapter(pool_connections=1, pool_maxsize=16, max_retries=0)
        self.session.mount("http://", adapter)
        self.session.mount("https://", adapter)

    @property
    def infer_url(self) -> str:
        return f"{self.url}/v2/models/{self.model_name}/infer"

    def close(self) -> None:
        self.session.close()

    # -- transport ------------------------------------------------------------------

    def call(self, what: str, attempt_fn: Callable[[float], Any]) -> Any:
        """Run ``attempt_fn(deadline)`` with retries; raise RemoteModelError at the end."""
        attempts = self.policy.retries + 1
        last = "no attempt made"
        for attempt in range(attempts):
            if attempt:
                _RETRIES.inc()
                time.sleep(self.policy.delay(attempt - 1, self._rng))
            try:
                return attempt_fn(time.monotonic() + self.policy.timeout_s)
            except _Retryable as exc:
                last = exc.status
        _FAILURES.inc()
        raise RemoteModelError(
            f"{what} at {self.url} failed after {attempts} attempt(s); last status: {last}. "
            "Check that the predictor is running and ready (GET /v2/health/ready), "
            "or give KServeModelHandler more retries / a longer timeout_s"
        )

    def request(self, method: str, url: str, deadline: float, **kwargs: Any) -> Reply:
        """One HTTP attempt that must finish (headers and body) before ``deadline``."""
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise _Retryable(f"deadline of {self.policy.timeout_s:g} s exceeded")
        try:
            with self.session.request(
                method, url, timeout=remaining, stream=True, **kwargs
            ) as response:
                chunks = []
                # requests' timeout bounds each socket read, not the whole body: keep a real
                # per-attempt deadline while a slow server trickles bytes in.
                for chunk in response.iter_content(1 << 20):
                    chunks.append(chunk)
                    if time.monotonic() > deadline:
                        raise _Retryable(f"deadline of {self.policy.timeout_s:g} s exceeded")
                reply = Reply(
                    response.status_code, response.reason, response.headers, b"".join(chunks)
                )
        except requests.Timeout as exc:
            raise _Retryable(
                f"timeout after {self.policy.timeout_s:g} s ({type(exc).__name__})"
            ) from exc
        except (requests.ConnectionError, requests.exceptions.ChunkedEncodingError) as exc:
            raise _Retryable(f"connection error ({_short(exc)})") from exc
        if reply.status in RETRY_STATUSES:
            raise _Retryable(f"HTTP {reply.status} {reply.reason}: {reply.text()}")
        return reply

    def get_json(self, path: str, what: str) -> dict[str, Any]:
        def attempt(deadline: float) -> dict[str, Any]:
            reply = self.request("GET", f"{self.url}{path}", deadline)
            if reply.status != 200:
                raise RemoteModelError(
                    f"{what} at {self.url}{path} answered HTTP {reply.status}: {reply.text()}"
                )
            try:
                doc: dict[str, Any] = json.loads(reply.content)
            except ValueError as exc:
                raise RemoteModelError(
                    f"{what} at {self.url}{path} answered non-JSON: {reply.text()}"
                ) from exc
            return doc

        result: dict[str, Any] = self.call(what, attempt)
        return result

    # -- inference -------------------------------------------------------------------

    def chunks(self, batch: Sequence[np.ndarray]) -> Iterator[list[np.ndarray]]:
        """Requests of same-shaped tiles, at most max_batch_size of them and
        max_request_bytes each way."""
        current: list[np.ndarray] = []
        for tile in batch:
            per_tile = tile.size * 4 * max(1, (self.classes or 1) / tile.shape[-1])
            if per_tile > self.max_request_bytes:
                raise ConfigError(
                    f"one {tile.shape} tile needs {per_tile / 2**20:.1f} MiB per request, over the "
                    f"{self.max_request_bytes / 2**20:.0f} MiB limit for {self.url}; use a smaller --tile-size"
                )
            if current and (
                tile.shape != current[0].shape
                or len(current) >= self.max_batch_size
                or (len(current) + 1) * per_tile > self.max_request_bytes
            ):
                yield current
                current = []
            current.append(tile)
        if current:
            yield current

    def infer(self, tiles: Sequence[np.ndarray]) -> np.ndarray:
        """One V2 request for a stack of same-shaped tiles -> (N, H, W, K)."""
        stacked = np.ascontiguousarray(np.stack(tiles), dtype="<f4")
        if self.bands is not None and stacked.shape[-1] != self.bands:
            raise ConfigError(
                f"tiles have {stacked.shape[-1]} bands but model {self.model_name!r} at {self.url} takes {self.bands}"
            )
        request_id = uuid.uuid4().hex
        body, headers = (_binary_request if self.binary else _json_request)(request_id, stacked)

        def attempt(deadline: float) -> np.ndarray:
            _REQUESTS.inc()
            started = time.perf_counter()
            reply = self.request("POST", self.infer_url, deadline, data=body, headers=headers)
            _LATENCY_MS.update(int((time.perf_counter() - started) * 1000))
            if reply.status != 200:
                # 4xx other than 429: the request itself is wrong; another try won't help.
                _FAILURES.inc()
                raise RemoteModelError(
                    f"inference at {self.infer_url} was rejected: HTTP {reply.status}: {reply.text()}"
                )
            return _decode_response(reply, self.infer_url)

        out: np.ndarray = self.call(f"inference of {len(tiles)} tile(s)", attempt)
        expected = (*stacked.shape[:3], self.classes or out.shape[-1])
        if out.shape != expected:
            raise RemoteModelError(
                f"{self.infer_url} returned {OUTPUT_NAME} of shape {list(out.shape)}, expected {list(expected)}"
            )
        return out


class KServeModelHandler(ModelHandler[np.ndarray, np.ndarray, Any]):
    """Runs tiles through a model served by KServe (Open Inference Protocol V2 REST).

    ``url`` is the server root (``http://host:port``); ``model_name`` defaults to the only
    model the server lists. Pass ``metadata`` (the bundle the pipeline tiles for) to check
    bands and classes against the server when the model loads.
    """

    def __init__(
        self,
        url: str,
        model_name: str | None = None,
        *,
        max_batch_size: int = 8,
        timeout_s: float = 30.0,
        retries: int = 5,
        backoff_s: float = 0.2,
        binary: bool = True,
        max_request_bytes: int = DEFAULT_MAX_REQUEST_BYTES,
        metadata: BundleMetadata | None = None,
        seed: int | None = None,
        planes: bool = False,
    ) -> None:
        if not url.startswith(("http://", "https://")):
            raise ConfigError(f"--kserve-url must be an http(s):// URL, got {url!r}")
        if max_batch_size < 1:
            raise ConfigError(f"max_batch_size must be >= 1, got {max_batch_size}")
        if max_request_bytes < 1:
            raise ConfigError(f"max_request_bytes must be >= 1, got {max_request_bytes}")
        super().__init__(min_batch_size=1, max_batch_size=max_batch_size)
        self._url = url.rstrip("/")
        self._model_name = model_name
        self._policy = RetryPolicy(retries=retries, backoff_s=backoff_s, timeout_s=timeout_s)
        self._binary = binary
        self._max_batch_size = max_batch_size
        self._max_request_bytes = max_request_bytes
        self._metadata = metadata
        self._seed = seed
        self._planes = planes

    def load_model(self) -> RemoteModel:
        remote = RemoteModel(
            self._url,
            self._model_name or "",
            self._policy,
            binary=self._binary,
            max_batch_size=self._max_batch_size,
            max_request_bytes=self._max_request_bytes,
            seed=self._seed,
        )
        # A cold server refuses connections or answers 503 until its model is loaded:
        # the same retry policy as inference covers that.
        remote.get_json("/v2/health/ready", "readiness check")
        if not remote.model_name:
            listed = remote.get_json("/v2/models", "model listing").get("models") or []
            if len(listed) != 1:
                raise ConfigError(f"{self._url} serves models {listed}: pass the model name to use")
            remote.model_name = str(listed[0])
        doc = remote.get_json(
            f"/v2/models/{remote.model_name}", f"metadata of model {remote.model_name!r}"
        )
        remote.bands, remote.classes = _check_metadata(
            doc, f"{self._url}/v2/models/{remote.model_name}", self._metadata
        )
        return remote

    def run_inference(
        self,
        batch: Sequence[np.ndarray],
        model: RemoteModel,
        inference_args: dict[str, Any] | None = None,
    ) -> Iterable[np.ndarray]:
        results: list[np.ndarray] = []
        for chunk in model.chunks(batch):
            out = model.infer(chunk)
            results.extend(probabilities_to_planes(out) if self._planes else out)
        return results

    def get_num_bytes(self, batch: Sequence[np.ndarray]) -> int:
        return batch_nbytes(batch)

    def batch_elements_kwargs(self) -> dict[str, Any]:
        return {"min_batch_size": 1, "max_batch_size": self._max_batch_size}

    def get_metrics_namespace(self) -> str:
        return NAMESPACE

    def share_model_across_processes(self) -> bool:
        return False


# -- wire format ---------------------------------------------------------------------


def _binary_request(request_id: str, stacked: np.ndarray) -> tuple[bytes, dict[str, str]]:
    raw = stacked.tobytes()
    header = json.dumps(
        {
            "id": request_id,
            "inputs": [
                {
                    "name": INPUT_NAME,
                    "shape": list(stacked.shape),
                    "datatype": "FP32",
                    "parameters": {"binary_data_size": len(raw)},
                }
            ],
            "outputs": [{"name": OUTPUT_NAME, "parameters": {"binary_data": True}}],
        },
        separators=(",", ":"),
    ).encode()
    headers = {"Content-Type": "application/octet-stream", HEADER_LENGTH: str(len(header))}
    return header + raw, headers


def _json_request(request_id: str, stacked: np.ndarray) -> tuple[bytes, dict[str, str]]:
    doc = {
        "id": request_id,
        "inputs": [
            {
                "name": INPUT_NAME,
                "shape": list(stacked.shape),
                "datatype": "FP32",
                "data": stacked.ravel().tolist(),
            }
        ],
        "outputs": [{"name": OUTPUT_NAME}],
    }
    return json.dumps(doc).encode(), {"Content-Type": "application/json"}


def _decode_response(reply: Reply, url: str) -> np.ndarray:
    content = reply.content
    length = reply.headers.get(HEADER_LENGTH)
    try:
        header_end = int(length) if length is not None else len(content)
        doc = json.loads(content[:header_end])
        outputs = {o["name"]: o for o in doc["outputs"]}
        spec = outputs[OUTPUT_NAME]
        shape = [int(v) for v in spec["shape"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise RemoteModelError(f"{url} answered a malformed V2 response ({_short(exc)})") from exc
    if spec.get("datatype") != "FP32":
        raise RemoteModelError(
            f"{url} returned {OUTPUT_NAME} as {spec.get('datatype')}, expected FP32"
        )
    if "data" in spec:
        return np.asarray(spec["data"], dtype=np.float32).reshape(shape)
    offset = header_end
    for o in doc["outputs"]:  # binary outputs follow the JSON in the order they are listed
        size = int((o.get("parameters") or {}).get("binary_data_size", 0))
        if o["name"] == OUTPUT_NAME:
            if size != int(np.prod(shape)) * 4 or offset + size > len(content):
                raise RemoteModelError(
                    f"{url} returned {size} bytes for {OUTPUT_NAME} of shape {shape}"
                )
            return (
                np.frombuffer(content, dtype="<f4", count=size // 4, offset=offset)
                .reshape(shape)
                .copy()
            )
        offset += size
    raise RemoteModelError(f"{url} returned no {OUTPUT_NAME} tensor")  # pragma: no cover


def _check_metadata(
    doc: dict[str, Any], where: str, meta: BundleMetadata | None
) -> tuple[int, int]:
    """The server's V2 model metadata against the bundle contract; (bands, classes)."""

    def find(kind: str, name: str) -> dict[str, Any]:
        for tensor in doc.get(kind) or []:
            if tensor.get("name") == name:
                return dict(tensor)
        names = [t.get("name") for t in doc.get(kind) or []]
        raise BundleError(f"{where} has {kind} {names}, not the bundle contract's {name!r}")

    sizes = []
    for kind, name, expected in (
        ("inputs", INPUT_NAME, len(meta.bands) if meta else None),
        ("outputs", OUTPUT_NAME, len(meta.classes) if meta else None),
    ):
        tensor = find(kind, name)
        shape = tensor.get("shape") or []
        if tensor.get("datatype") != "FP32" or len(shape) != 4 or int(shape[-1]) < 1:
            raise BundleError(
                f"{where}: {name} is {tensor.get('datatype')} {shape}, expected FP32 [-1, -1, -1, n]"
            )
        if expected is not None and int(shape[-1]) != expected:
            what = "bands" if kind == "inputs" else "classes"
            raise BundleError(
                f"{where} serves a model with {shape[-1]} {what}, but bundle {meta.name!r} "  # type: ignore[union-attr]
                f"has {expected}: serve the same bundle the pipeline tiles for"
            )
        sizes.append(int(shape[-1]))
    return sizes[0], sizes[1]


def _short(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text[:200]}"
