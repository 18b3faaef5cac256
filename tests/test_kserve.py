"""The KServe path: a real ModelServer on loopback, a real V2 client, and faults.

One predictor subprocess serves the tiny bundle for the whole module; answers are
compared with the same bundle run in this process.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import apache_beam as beam
import numpy as np
import pytest
import requests
from apache_beam.metrics.metric import MetricsFilter
from apache_beam.ml.inference.base import RunInference
from apache_beam.testing.util import assert_that, equal_to
from kserve_util import REPO, FaultProxy, Predictor, shared_predictor

from beam_pipelines.runner import make_pipeline, pipeline_options
from models.bundle import read_metadata
from models.handlers import BundleModelHandler
from models.kserve_handler import KServeModelHandler
from tessera.ports import free_port
from transforms.core.errors import BundleError, RemoteModelError

pytestmark = pytest.mark.e2e
NAME = "tessera-reference"  # the tiny bundle's metadata name, the default model name
TOL = 1e-4


@pytest.fixture(scope="module")
def predictor(tiny_bundle: str) -> Predictor:
    return shared_predictor(tiny_bundle)  # serves the bundle under its own name


@pytest.fixture(scope="module")
def local_model(tiny_bundle: str):
    return BundleModelHandler(tiny_bundle).load_model()


@pytest.fixture(scope="module")
def tiles(tiny_bundle: str) -> list[np.ndarray]:
    meta = read_metadata(tiny_bundle)
    side = meta.tile_size + 2 * meta.halo
    rng = np.random.default_rng(7)
    return [
        rng.uniform(0, 3000, (side, side, len(meta.bands))).astype(np.float32) for _ in range(7)
    ]


def handler(url: str, tiny_bundle: str, **kwargs) -> KServeModelHandler:
    return KServeModelHandler(url, NAME, metadata=read_metadata(tiny_bundle), **kwargs)


def test_health_metadata_metrics_and_loopback_only(predictor: Predictor, tiny_bundle: str) -> None:
    meta = read_metadata(tiny_bundle)
    # ready said 503 while the SavedModel loaded, then 200 (0 = port not open yet)
    assert 503 in predictor.statuses and predictor.statuses[-1] == 200, predictor.statuses
    assert requests.get(f"{predictor.url}/v2/health/live", timeout=5).json() == {"live": True}
    doc = requests.get(f"{predictor.url}/v2/models/{NAME}", timeout=5).json()
    assert doc["inputs"] == [
        {"name": "image", "datatype": "FP32", "shape": [-1, -1, -1, len(meta.bands)]}
    ]
    assert doc["outputs"] == [
        {"name": "probabilities", "datatype": "FP32", "shape": [-1, -1, -1, len(meta.classes)]}
    ]
    assert requests.get(f"{predictor.url}/v2/models/nope", timeout=5).status_code == 404
    metrics = requests.get(f"{predictor.url}/metrics", timeout=5)
    assert metrics.status_code == 200 and "request_predict_seconds" in metrics.text
    # bound to 127.0.0.1 only: another loopback address on the same port is refused
    with pytest.raises(requests.ConnectionError):
        requests.get(f"http://127.0.0.2:{predictor.port}/v2/health/live", timeout=5)


@pytest.mark.parametrize("binary", [False, True], ids=["json", "binary"])
def test_tritonclient_matches_in_process(
    predictor: Predictor, local_model, binary: bool, tmp_path: Path
) -> None:
    rng = np.random.default_rng(3)
    batch = rng.uniform(0, 3000, (2, 16, 24, 4) if not binary else (3, 48, 40, 4)).astype(
        np.float32
    )
    np.save(tmp_path / "batch.npy", batch)
    # tritonclient (gevent) never runs in this process: see tests/triton_client.py
    done = subprocess.run(
        [sys.executable, str(REPO / "tests" / "triton_client.py"), predictor.url, NAME,
         str(tmp_path / "batch.npy"), str(tmp_path / "out.npy"), "binary" if binary else "json"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    response = json.loads(done.stdout.strip().splitlines()[-1])
    assert response["id"] == "42" and response["model_name"] == NAME
    remote = np.load(tmp_path / "out.npy")
    assert remote.shape == (*batch.shape[:3], 5)
    np.testing.assert_allclose(remote, local_model(batch), atol=TOL)
    assert "gevent" not in sys.modules  # nothing in the test process started a gevent hub


def test_handler_matches_in_process_and_splits_requests(
    predictor: Predictor, tiny_bundle: str, local_model, tiles: list[np.ndarray]
) -> None:
    expected = local_model(np.stack(tiles))
    per_tile = tiles[0].size * 4 * 5 / 4  # the output is the larger way: 5 classes, 4 bands
    with FaultProxy(predictor.url) as proxy:  # no faults: it counts requests
        h = handler(proxy.url, tiny_bundle, max_batch_size=3, max_request_bytes=int(2.5 * per_tile))
        model = h.load_model()
        got = list(h.run_inference(tiles, model))
    assert h.batch_elements_kwargs() == {"min_batch_size": 1, "max_batch_size": 3}
    # 7 tiles, 2 per request (the byte cap bites before max_batch_size): 4 requests + 2 GETs
    assert proxy.counts["requests"] == 4 + 2, proxy.counts
    assert len(got) == len(tiles) and all(g.dtype == np.float32 for g in got)
    np.testing.assert_allclose(np.stack(got), expected, atol=TOL)
    assert (np.stack(got).argmax(-1) == expected.argmax(-1)).all()

    json_handler = handler(predictor.url, tiny_bundle, binary=False)
    got_json = list(json_handler.run_inference(tiles[:2], json_handler.load_model()))
    np.testing.assert_allclose(np.stack(got_json), expected[:2], atol=TOL)


def test_faults_are_retried_and_answers_identical(
    predictor: Predictor, tiny_bundle: str, tiles: list[np.ndarray]
) -> None:
    direct = handler(predictor.url, tiny_bundle, max_batch_size=1)
    expected = np.stack(list(direct.run_inference(tiles, direct.load_model())))
    # seed 3: 2 injected 503s and 3 held requests among the first 14 draws
    with FaultProxy(predictor.url, p_503=0.2, p_delay=0.15, delay_s=1.5, seed=3) as proxy:
        h = handler(
            proxy.url,
            tiny_bundle,
            max_batch_size=1,
            timeout_s=0.75,
            retries=8,
            backoff_s=0.02,
            seed=1,
        )
        got = np.stack(list(h.run_inference(tiles, h.load_model())))
    assert proxy.counts["503"] >= 1 and proxy.counts["delayed"] >= 1, proxy.counts
    assert np.array_equal(got, expected)


def test_beam_counters_under_faults(
    predictor: Predictor, tiny_bundle: str, tiles: list[np.ndarray]
) -> None:
    """RunInference with the handler: outputs complete, retries visible as Beam counters."""
    # seed 0: the two GETs of load_model pass, the first inference POST gets 503 twice
    with FaultProxy(predictor.url, p_503=0.5, seed=0) as proxy:
        h = handler(proxy.url, tiny_bundle, max_batch_size=4, retries=8, backoff_s=0.01, seed=2)
        p = make_pipeline(pipeline_options(None))
        shapes = p | beam.Create(tiles) | RunInference(h) | beam.Map(lambda r: r.shape)
        assert_that(shapes, equal_to([(*tiles[0].shape[:2], 5)] * len(tiles)))
        result = p.run()
        result.wait_until_finish()
    counters = {
        c.key.metric.name: c.committed
        for c in result.metrics().query(MetricsFilter().with_namespace("tessera"))["counters"]
    }
    assert counters.get("kserve_retries", 0) >= 1, counters
    # every inference attempt that reached the proxy, injected 503s included
    assert counters["kserve_requests"] == proxy.counts["POST"] >= 2, (counters, proxy.counts)
    assert counters.get("kserve_failures", 0) == 0


def test_bad_request_fails_once_with_the_reason(predictor: Predictor, tiny_bundle: str) -> None:
    odd = np.zeros((21, 21, 4), np.float32)  # not a multiple of the alignment: HTTP 400
    with FaultProxy(predictor.url) as proxy:
        h = handler(proxy.url, tiny_bundle, retries=3, backoff_s=0.01)
        model = h.load_model()
        before = proxy.counts["requests"]
        with pytest.raises(RemoteModelError, match=r"HTTP 400.*alignment") as err:
            h.run_inference([odd], model)
        assert proxy.counts["requests"] == before + 1  # 4xx is not retried
    assert proxy.url in str(err.value)


def test_server_down_fails_loudly_naming_the_url(
    predictor: Predictor, tiny_bundle: str, tiles: list[np.ndarray]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    started = time.monotonic()
    with pytest.raises(RemoteModelError) as err:
        handler(dead, tiny_bundle, retries=2, backoff_s=0.01).load_model()
    assert dead in str(err.value) and "connection" in str(err.value).lower()
    assert "3 attempt" in str(err.value)
    assert time.monotonic() - started < 10

    proxy = FaultProxy(predictor.url).start()
    h = handler(proxy.url, tiny_bundle, retries=2, backoff_s=0.01)
    model = h.load_model()
    assert len(list(h.run_inference(tiles[:1], model))) == 1
    proxy.stop()  # the server goes away between batches
    with pytest.raises(RemoteModelError, match="last status: connection error") as err:
        h.run_inference(tiles[:1], model)
    assert proxy.url in str(err.value)


def test_contract_mismatch_names_the_url(predictor: Predictor, tiny_bundle: str) -> None:
    meta = read_metadata(tiny_bundle)
    three_bands = meta.model_copy(update={"bands": ["R", "G", "B"]})
    with pytest.raises(BundleError, match="3") as err:
        KServeModelHandler(predictor.url, NAME, metadata=three_bands, retries=0).load_model()
    assert predictor.url in str(err.value) and "bands" in str(err.value)
    # model name discovered from the server when it serves exactly one
    assert KServeModelHandler(predictor.url, retries=0).load_model().model_name == NAME


def test_predictor_does_not_import_beam() -> None:
    code = (
        "import sys; import models.predictor as p; p.build_server_classes(); "
        "bad = [m for m in ('apache_beam', 'tensorflow') if m in sys.modules]; "
        "sys.exit(f'imported {bad}' if bad else 0)"
    )
    run = subprocess.run(
        [sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert run.returncode == 0, run.stderr[-2000:]
