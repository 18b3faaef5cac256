"""Training, export, skew and evaluation: the bundle that serves is the model that was
trained, with the tf.Transform normalisation inside it."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from models import synth
from models.bundle import SHIPPED_MODEL, read_metadata
from models.evaluate import Scores, confusion_matrix, iou_from_confusion

PATCH = 32


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """synth -> prepare -> train (1 epoch, tiny net) -> export, once per module."""
    from beam_pipelines.prepare import PrepareConfig, build_and_run
    from models import train

    root = tmp_path_factory.mktemp("train")
    pairs = synth.write_scenes(str(root / "scenes"), 3, seed=8, size=96)
    data = str(root / "data")
    build_and_run(PrepareConfig(scenes=[s for s, _ in pairs], labels=[lab for _, lab in pairs], output=data,
                                patch_size=PATCH, patches_per_scene=8, seed=8, val_fraction=0.34), [])
    out = str(root / "bundle")
    cfg = train.TrainConfig(data=data, output=out, epochs=1, levels=2, width=4, batch_size=8, tile_size=64)
    result = train.train(cfg)
    train.export(result, out)
    return {"root": root, "data": data, "bundle": out, "pairs": pairs, "result": result}


def test_bundle_contract(trained: dict) -> None:
    meta = read_metadata(trained["bundle"])
    assert meta.alignment == 4  # 2 poolings, read off the network
    assert meta.receptive_field % 2 == 1 and meta.receptive_field > 9
    assert meta.normalisation.source == "tensorflow-transform"
    assert meta.trained_on["scenes"] == {"train": 2, "validation": 1}
    assert meta.trained_on["prepare_seed"] == 8 and meta.trained_on["patches"]["train"] == 16
    assert len(meta.version) == 16 and meta.tile_size == 64
    assert Path(trained["bundle"], "assets", "training_curves.png").stat().st_size > 1000


def _saved_graph(bundle: str) -> tuple[int, int]:
    """(functions in the library, objects in the object graph) of a bundle's SavedModel."""
    from tensorflow.core.protobuf import saved_model_pb2

    sm = saved_model_pb2.SavedModel()
    sm.ParseFromString(Path(bundle, "saved_model.pb").read_bytes())
    graph = sm.meta_graphs[0]
    return len(graph.graph_def.library.function), len(graph.object_graph_def.nodes)


def test_bundles_hold_weights_and_the_serving_function_only(trained: dict) -> None:
    """Not the Keras model: its ~750 layer objects and extra call graphs made every load
    rebuild them (1.0-1.4 s instead of ~0.3 s for the shipped U-Net)."""
    import tensorflow as tf

    for bundle in (trained["bundle"], str(SHIPPED_MODEL)):
        functions, objects = _saved_graph(bundle)
        weights = len(tf.train.list_variables(str(Path(bundle, "variables", "variables"))))
        assert functions <= 4, (bundle, functions)
        assert objects <= weights + 10, (bundle, objects, weights)


def test_receptive_field_bounds_the_influence_of_one_pixel(trained: dict) -> None:
    from models.handlers import predict_array

    meta = read_metadata(trained["bundle"])
    rng = np.random.default_rng(0)
    size, centre = 64, 32
    base = rng.uniform(100, 3000, (1, size, size, 4)).astype(np.float32)
    poked = base.copy()
    poked[0, centre, centre] += 2000
    diff = np.abs(predict_array(trained["bundle"], poked) - predict_array(trained["bundle"], base)).max(axis=(0, 3))
    rows, cols = np.nonzero(diff > 0)
    assert rows.size > 0
    radius = max(np.abs(rows - centre).max(), np.abs(cols - centre).max())
    assert radius <= (meta.receptive_field - 1) // 2
    assert radius >= (meta.receptive_field - 1) // 4  # measured on this network, not a loose bound


def test_no_training_serving_skew(trained: dict) -> None:
    """A raw patch through prepare's tf.Transform graph + the trained layers equals the
    exported bundle's probabilities on the same raw patch."""
    import tensorflow_transform as tft

    from beam_pipelines.prepare import PrepareConfig, SceneJob, _sample_scene
    from models import preprocess
    from models.handlers import predict_array

    scene, labels = trained["pairs"][0]
    cfg = PrepareConfig(scenes=[scene], labels=[labels], output="unused", patch_size=PATCH, patches_per_scene=2, seed=5)
    records, _, _ = _sample_scene(SceneJob(0, scene, labels, "train"), cfg)
    raw = np.stack([r["image"] for r in records])
    transformed = tft.TFTransformOutput(trained["data"]).transform_raw_features(
        {preprocess.IMAGE: raw, preprocess.LABELS: np.stack([r["labels"] for r in records])}
    )
    normalised = transformed[preprocess.IMAGE].numpy().reshape(-1, PATCH, PATCH, 4)
    via_training = np.asarray(trained["result"].core(normalised, training=False))
    via_bundle = predict_array(trained["bundle"], raw.reshape(-1, PATCH, PATCH, 4))
    assert via_bundle.shape == (2, PATCH, PATCH, 5)
    np.testing.assert_allclose(via_bundle, via_training, atol=1e-5)
    assert np.abs(via_bundle - via_training).max() < 1e-5


def test_metric_maths() -> None:
    truth = np.array([[0, 0, 1, 1], [2, 2, 255, 1]], np.uint8)
    pred = np.array([[0, 1, 1, 1], [2, 0, 0, 255]], np.uint8)
    matrix, missed = confusion_matrix(truth, pred, 3)
    assert matrix.tolist() == [[1, 1, 0], [0, 2, 0], [1, 0, 1]] and missed == 1
    iou = iou_from_confusion(matrix, np.array([0, 1, 0]))
    np.testing.assert_allclose(iou, [1 / 3, 2 / 4, 1 / 2])
    scores = Scores(["a", "b", "c"], matrix, np.array([0, 1, 0]), 1)
    assert scores.pixels == 7 and scores.miou == pytest.approx(np.mean([1 / 3, 0.5, 0.5]))
    assert np.isnan(iou_from_confusion(np.zeros((2, 2)))).all()
    with pytest.raises(ValueError):
        confusion_matrix(np.array([5]), np.array([0]), 3)


def test_evaluate_runs_through_the_inference_pipeline(trained: dict, capsys: pytest.CaptureFixture[str]) -> None:
    from models import evaluate

    held = trained["root"] / "heldout"
    synth.write_scenes(str(held), 1, seed=99, size=80)
    out = trained["root"] / "eval"
    assert evaluate.main(["--model", trained["bundle"], "--data", str(held), "--output", str(out), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    labels = synth.synth_scene(99, 80, 0).labels
    assert doc["pixels"] == int((labels != 255).sum())
    assert set(doc["iou"]) == {"background", "building", "road", "vegetation", "water"}
    assert np.array(doc["confusion"]).sum() + doc["unpredicted"] == doc["pixels"]
    assert (out / "infer" / "landcover" / "scene_99_000" / "classes.tif").exists()
    assert (out / "confusion.png").exists()


def test_shipped_default_is_trained_and_meets_targets() -> None:
    meta = read_metadata(SHIPPED_MODEL)
    assert meta.normalisation.source == "tensorflow-transform"
    held = meta.metrics["held_out"]
    assert held["synth_seed"] not in meta.trained_on["synth_seeds"]
    assert held["iou"]["building"] >= 0.80 and held["miou"] >= 0.75
    assert meta.metrics["wall_time_s"] <= 15 * 60
    size = sum(p.stat().st_size for p in SHIPPED_MODEL.rglob("*") if p.is_file())
    assert size < 5 * 2**20
