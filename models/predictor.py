"""``tessera serve model``: the bundle behind KServe's ModelServer, Open Inference Protocol V2.

Where the model runs when inference is remote. The server runs the same loader as the
in-process handler (``models.bundle_runtime.load_bundle``), so both paths give the same
numbers. Endpoints are KServe's own: ``/v2/health/live``, ``/v2/health/ready`` (503 until
the SavedModel is loaded and warmed up), ``/v2/models/{name}``, ``/v2/models/{name}/infer``
(JSON and the binary tensor extension) and ``/metrics``.

Three small departures from a stock ``kserve.ModelServer``, each marked where it is made:
the REST server binds ``--host`` instead of 0.0.0.0, server readiness waits for the model,
and binary request tensors are decoded with numpy instead of through Python lists.
No Beam here: the predictor image stays light.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
import threading
import time
import uuid
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from models.bundle import INPUT_NAME, OUTPUT_NAME, BundleMetadata, read_metadata, resolve_model_path
from transforms.core.errors import ConfigError

if TYPE_CHECKING:
    from models.bundle_runtime import LoadedBundle

log = logging.getLogger("tessera.predictor")

DATATYPE = "FP32"


def _import_kserve() -> None:
    """Import kserve with an empty command line.

    ``kserve.model_server`` runs ``argparse.parse_known_args()`` on ``sys.argv`` at import
    time; with prefix matching, our ``--model DIR`` would be read as its ``--model_name``
    and an ambiguous prefix would exit the process. Hide our arguments from it.
    """
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        import kserve.model_server  # noqa: F401  (the import that parses argv)
    finally:
        sys.argv = saved


def tensor_types(meta: BundleMetadata) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """V2 metadata of the bundle's signature: ``image`` [-1,-1,-1,C] -> ``probabilities`` [-1,-1,-1,K]."""
    inputs = [{"name": INPUT_NAME, "datatype": DATATYPE, "shape": [-1, -1, -1, len(meta.bands)]}]
    outputs = [
        {"name": OUTPUT_NAME, "datatype": DATATYPE, "shape": [-1, -1, -1, len(meta.classes)]}
    ]
    return inputs, outputs


def build_server_classes() -> tuple[type, type, type]:
    """The KServe subclasses, built after kserve is imported (see ``_import_kserve``)."""
    _import_kserve()
    from kserve import Model, ModelServer
    from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
    from kserve.errors import InvalidInput
    from kserve.protocol.dataplane import DataPlane
    from kserve.protocol.infer_type import (
        InferInput,
        InferOutput,
        InferRequest,
        InferResponse,
        RequestedOutput,
    )
    from kserve.utils.numpy_codec import to_np_dtype

    class TesseraModel(Model):  # type: ignore[misc]
        """One bundle; loads in a background thread so liveness answers while TF starts."""

        def __init__(self, name: str, model_path: str, metadata: BundleMetadata) -> None:
            super().__init__(name)
            self.model_path = model_path
            self.metadata = metadata
            self._bundle: LoadedBundle | None = None
            self._loader: threading.Thread | None = None
            self._lock = threading.Lock()

        def load(self) -> bool:
            """Start loading (idempotent, non-blocking): KServe's DataPlane may call this from
            the event loop for a model that is not ready yet."""
            with self._lock:
                if self._loader is None:
                    self._loader = threading.Thread(
                        target=self._load, name="tessera-load", daemon=True
                    )
                    self._loader.start()
            return self.ready

        def _load(self) -> None:
            from models.bundle_runtime import load_bundle

            started = time.perf_counter()
            try:
                bundle = load_bundle(self.model_path)
                # One forward pass before reporting ready, so the first request does not pay
                # for kernel initialisation.
                side = 2 * self.metadata.alignment
                bundle(np.zeros((1, side, side, len(self.metadata.bands)), np.float32))
            except Exception:
                log.exception("cannot load model bundle %s; exiting", self.model_path)
                logging.shutdown()
                os._exit(1)  # a predictor that can never become ready should crash, not hang
            self._bundle = bundle
            self.ready = True
            log.warning(
                "model %r (%s) ready in %.1f s",
                self.name,
                self.model_path,
                time.perf_counter() - started,
            )

        def get_input_types(self) -> list[dict[str, Any]]:
            return tensor_types(self.metadata)[0]

        def get_output_types(self) -> list[dict[str, Any]]:
            return tensor_types(self.metadata)[1]

        def _batch(self, request: InferRequest) -> np.ndarray:
            if len(request.inputs) != 1 or request.inputs[0].name != INPUT_NAME:
                names = [i.name for i in request.inputs]
                raise InvalidInput(f"expected exactly one input named {INPUT_NAME!r}, got {names}")
            tensor = request.inputs[0]
            if tensor.datatype != DATATYPE:
                raise InvalidInput(
                    f"input {INPUT_NAME!r} must be {DATATYPE}, got {tensor.datatype}"
                )
            shape = list(tensor.shape)
            bands, align = len(self.metadata.bands), self.metadata.alignment
            if len(shape) != 4 or shape[3] != bands:
                raise InvalidInput(
                    f"input {INPUT_NAME!r} must have shape [N, H, W, {bands}], got {shape}"
                )
            if shape[1] % align or shape[2] % align:
                raise InvalidInput(
                    f"input H and W must be multiples of the model's alignment {align}, got {shape[1]}x{shape[2]}"
                )
            return tensor.as_numpy()

        async def predict(
            self, payload: Any, headers: dict[str, str] | None = None
        ) -> InferResponse:
            if not isinstance(payload, InferRequest):
                raise InvalidInput(
                    "this model speaks the V2 protocol: POST /v2/models/{name}/infer"
                )
            if self._bundle is None:
                raise InvalidInput(f"model {self.name!r} is not loaded yet")
            batch = self._batch(payload)
            # TF releases the GIL: run it off the event loop so health checks and request
            # decoding go on while a batch computes.
            loop = asyncio.get_running_loop()
            probs = await loop.run_in_executor(None, self._bundle, batch)
            output = InferOutput(
                name=OUTPUT_NAME, shape=list(probs.shape), datatype=DATATYPE, data=probs
            )
            return InferResponse(
                response_id=str(payload.id) if payload.id else uuid.uuid4().hex,  # must be a str
                model_name=self.name,
                model_version=self.metadata.version,
                infer_outputs=[output],
                use_binary_outputs=payload.use_binary_outputs,
                requested_outputs=payload.request_outputs,
            )

    class TesseraDataPlane(DataPlane):  # type: ignore[misc]
        async def ready(self) -> bool:
            # Stock KServe answers ready whenever the process is up; V2 says a server is ready
            # when its models are, and Kubernetes must not route tiles to a loading pod.
            if not await super().ready():
                return False
            names = list(self.model_registry.get_models())
            return bool(names) and all([await self.model_registry.is_model_ready(n) for n in names])

        def decode_inference_request(
            self, body: Any, headers: dict[str, str], model_name: str
        ) -> Any:
            # Stock KServe turns every binary tensor into a Python list of floats and back
            # (InferRequest.from_bytes -> set_data_from_numpy(binary_data=False)): seconds per
            # batch of tiles. Decode numeric binary tensors straight into numpy instead.
            length = (
                headers.get(INFERENCE_CONTENT_LENGTH_HEADER) if isinstance(body, bytes) else None
            )
            if length is None:
                return super().decode_inference_request(body, headers, model_name)
            return decode_binary_request(body, int(length), model_name)

    def decode_binary_request(body: bytes, json_length: int, model_name: str) -> InferRequest:
        import orjson

        try:
            doc = orjson.loads(body[:json_length])
            inputs_doc = list(doc["inputs"])
        except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
            raise InvalidInput(f"unrecognised binary inference request header: {exc}") from exc
        if any(i.get("datatype") == "BYTES" for i in inputs_doc):
            return InferRequest.from_bytes(body, json_length, model_name)
        inputs, offset = [], json_length
        for spec in inputs_doc:
            params = spec.get("parameters") or None
            tensor = InferInput(
                spec["name"], list(spec["shape"]), spec["datatype"], parameters=params
            )
            if spec.get("data") is not None:
                tensor.data = spec["data"]
            elif params and "binary_data_size" in params:
                size = int(params["binary_data_size"])
                dtype = to_np_dtype(spec["datatype"])
                if dtype is None:
                    raise InvalidInput(
                        f"invalid datatype {spec['datatype']} for input {spec['name']!r}"
                    )
                count = int(np.prod(spec["shape"]))
                if size != count * np.dtype(dtype).itemsize or offset + size > len(body):
                    raise InvalidInput(
                        f"input {spec['name']!r}: binary_data_size {size} does not match shape {spec['shape']}"
                    )
                array = np.frombuffer(body, dtype=dtype, count=count, offset=offset).reshape(
                    spec["shape"]
                )
                tensor.set_data_from_numpy(array, binary_data=True)
                offset += size
            else:
                raise InvalidInput(f"'data' field is missing for input {spec['name']!r}")
            inputs.append(tensor)
        outputs = [
            RequestedOutput(o["name"], o.get("parameters")) for o in doc.get("outputs") or []
        ]
        return InferRequest(
            model_name=model_name,
            infer_inputs=inputs,
            request_id=doc.get("id"),
            parameters=doc.get("parameters"),
            request_outputs=outputs or None,
        )

    class TesseraModelServer(ModelServer):  # type: ignore[misc]
        def __init__(self, *, host: str, **kwargs: Any) -> None:
            super().__init__(**kwargs)
            self.host = host
            self.dataplane = TesseraDataPlane(model_registry=self.registered_models)

        def setup_event_loop(self) -> None:
            # KServe 0.21 hard-codes host="0.0.0.0" in RESTServer's uvicorn.Config.
            # ModelServer.start() builds that RESTServer, then calls setup_event_loop()
            # before it serves: the one seam between construction and bind. uvicorn reads
            # config.host only when it binds, so setting it here binds --host and only it.
            if self._rest_server is None:
                raise ConfigError(
                    "tessera serve model runs one uvicorn worker; --workers > 1 is not supported"
                )
            self._rest_server.config.host = self.host
            super().setup_event_loop()

    return TesseraModel, TesseraDataPlane, TesseraModelServer


class _ExpectedErrors(logging.Filter):
    """KServe logs every mapped exception at ERROR with a traceback, including the 503
    each readiness probe gets while the model loads. Drop those; keep bad requests as
    one line."""

    def filter(self, record: logging.LogRecord) -> bool:
        exc = record.exc_info[1] if record.exc_info else None
        name = type(exc).__name__
        if name in ("ServerNotReady", "ModelNotReady"):
            return False
        if name in ("InvalidInput", "ModelNotFound"):
            record.msg, record.args = "rejected request: %s: %s", (name, exc)
            record.exc_info = record.exc_text = None
        return True


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(
        prog="tessera serve model", description=__doc__.splitlines()[0]
    )
    parser.add_argument(
        "--model", help="bundle directory (default: $TESSERA_MODEL, else the shipped model)"
    )
    parser.add_argument(
        "--host", default="127.0.0.1", help="address to bind (default 127.0.0.1; 0.0.0.0 in a pod)"
    )
    parser.add_argument("--port", type=int, default=8080, help="HTTP port (default 8080, KServe's)")
    parser.add_argument(
        "--name", help="model name on /v2/models/{name} (default: the bundle's name)"
    )
    args = parser.parse_args(argv)
    if not 0 < args.port < 65536:
        raise ConfigError(f"--port must be in 1..65535, got {args.port}")

    path = resolve_model_path(args.model)
    meta = read_metadata(path)  # a bad bundle fails here, before any socket is opened
    model_cls, _, server_cls = build_server_classes()
    logging.getLogger("kserve").addFilter(_ExpectedErrors())
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated")
    model = model_cls(args.name or meta.name, path, meta)
    server = server_cls(host=args.host, http_port=args.port, enable_grpc=False, workers=1)
    # ModelServer.start(models) refuses models that are not ready yet; register ours
    # directly and start the server with none, so /v2/health/ready can say 503 while
    # the SavedModel loads in the background.
    server.register_model(model)
    model.load()
    log.warning("serving %r from %s on http://%s:%d", model.name, path, args.host, args.port)
    server.start([])
    return 0
