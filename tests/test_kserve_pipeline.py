"""Same answers: ``tessera infer --inference kserve`` writes the classes ``--inference local`` does."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import synthetic_scene
from kserve_util import FaultProxy, Predictor, shared_predictor

from beam_pipelines.infer import main as infer_main
from beam_pipelines.infer import run_infer
from tessera.ports import free_port

pytestmark = pytest.mark.e2e


@pytest.fixture(scope="module")
def predictor(tiny_bundle: str) -> Predictor:
    return shared_predictor(tiny_bundle)


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("scenes") / "Odd_Scene.tif"
    synthetic_scene(path, 75, 61, seed=4)  # 4-band uint16, odd size: edge tiles mirror
    return path


def classes(output: Path) -> np.ndarray:
    with rasterio.open(output / "landcover" / "odd_scene" / "classes.tif") as ds:
        return ds.read(1)


def test_kserve_writes_the_classes_local_does(
    predictor: Predictor, tiny_bundle: str, scene: Path, tmp_path: Path
) -> None:
    local = run_infer(
        [str(scene)], str(tmp_path / "local"), model=tiny_bundle, tile_size=32, inference="local"
    )
    assert local.ok, local.failed
    # through a proxy that answers 503 now and then: retried, same answers
    with FaultProxy(predictor.url, p_503=0.2, seed=1) as proxy:
        remote = run_infer(
            [str(scene)],
            str(tmp_path / "kserve"),
            model=tiny_bundle,
            tile_size=32,
            inference="kserve",
            kserve_url=proxy.url,
            batch_size=2,  # 6 tiles: 3 requests
        )
    assert remote.ok, remote.failed
    assert proxy.counts["POST"] >= 2 and proxy.counts["503"] >= 1, proxy.counts
    want, got = classes(tmp_path / "local"), classes(tmp_path / "kserve")
    assert want.shape == (75, 61) and (want != 255).all()
    assert np.array_equal(got, want)


def test_cli_kserve_with_the_server_down_publishes_nothing(
    tiny_bundle: str, scene: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    dead = f"http://127.0.0.1:{free_port()}"
    out = tmp_path / "out"
    argv = [
        "--scenes",
        str(scene),
        "--output",
        str(out),
        "--model",
        tiny_bundle,
        "--tile-size",
        "32",
    ]
    argv += ["--inference", "kserve", "--kserve-url", dead]
    try:
        code = infer_main(argv)
    except Exception as exc:  # noqa: BLE001 - Beam re-raises the handler's error wrapped
        message = str(exc)
    else:
        assert code == 1
        message = capsys.readouterr().err
    assert dead in message
    assert not (out / "landcover" / "odd_scene" / "classes.tif").exists()
