"""``tessera prepare``: reproducible class-balanced patches, split by scene, tf.Transform
statistics that ignore nodata, vector labels, and loud failures on bad inputs."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from affine import Affine

from beam_pipelines import prepare
from models import synth
from transforms.core.errors import InvalidSceneError, TesseraError

PATCH = 32


@pytest.fixture(scope="module")
def scenes(tmp_path_factory: pytest.TempPathFactory) -> list[tuple[str, str]]:
    return synth.write_scenes(str(tmp_path_factory.mktemp("synth")), 3, seed=4, size=128)


@pytest.fixture(scope="module")
def prepared(scenes: list[tuple[str, str]], tmp_path_factory: pytest.TempPathFactory) -> tuple[prepare.PrepareConfig, dict]:
    out = str(tmp_path_factory.mktemp("prep") / "data")
    cfg = prepare.PrepareConfig(
        scenes=[s for s, _ in scenes], labels=[lab for _, lab in scenes], output=out,
        patch_size=PATCH, patches_per_scene=12, seed=3, val_fraction=0.34,
    )
    assert prepare.main([
        "--scenes", *cfg.scenes, "--labels", *cfg.labels, "--output", out, "--patch-size", str(PATCH),
        "--patches-per-scene", "12", "--seed", "3", "--val-fraction", "0.34", "--runner=DirectRunner",
    ]) == 0
    return cfg, json.loads(Path(out, "prepare.json").read_text())


def _read_records(out: str, split: str) -> list[dict[str, np.ndarray]]:
    import tensorflow as tf

    from models import preprocess

    spec = preprocess.transformed_feature_spec(PATCH)
    files = sorted(str(p) for p in Path(out).glob(f"{split}-*.tfrecord"))
    return [
        {k: v.numpy() for k, v in tf.io.parse_single_example(r, spec).items()}
        for r in tf.data.TFRecordDataset(files)
    ]


def test_outputs_and_split_by_scene(prepared) -> None:
    cfg, manifest = prepared
    out = Path(cfg.output)
    assert (out / "transform_fn" / "saved_model.pb").exists()
    assert (out / "transformed_metadata").is_dir()
    train, val = manifest["scenes"]["train"], manifest["scenes"]["validation"]
    assert len(train) == 2 and len(val) == 1 and not set(train) & set(val)
    assert manifest["patches"] == {"train": 24, "validation": 12}
    assert len(_read_records(cfg.output, "train")) == 24
    assert len(_read_records(cfg.output, "validation")) == 12


def _raw_train_pixels(cfg: prepare.PrepareConfig, manifest: dict) -> np.ndarray:
    splits = prepare.split_scenes(len(cfg.scenes), cfg.val_fraction, cfg.seed)
    pixels = []
    for i, (s, lab, split) in enumerate(zip(cfg.scenes, cfg.labels, splits, strict=True)):
        if split != "train":
            continue
        assert s in manifest["scenes"]["train"]
        records, _, _ = prepare._sample_scene(prepare.SceneJob(i, s, lab, split), cfg)
        pixels += [r["image"].reshape(-1, 4) for r in records]
    px = np.concatenate(pixels).astype(np.float64)
    return px[np.any(px != 0, axis=1)]


def test_statistics_ignore_nodata_and_normalise(prepared) -> None:
    from models.train import read_statistics

    cfg, manifest = prepared
    raw = _raw_train_pixels(cfg, manifest)
    mean, std = read_statistics(cfg.output)
    np.testing.assert_allclose(mean, raw.mean(0), rtol=1e-4)
    np.testing.assert_allclose(std, raw.std(0), rtol=1e-3)
    records = _read_records(cfg.output, "train")
    image = np.concatenate([r["image"].reshape(-1, 4) for r in records])
    labels = np.concatenate([r["labels"] for r in records])
    valid = image[labels != 255]
    np.testing.assert_allclose(valid.mean(0), 0, atol=1e-3)
    np.testing.assert_allclose(valid.std(0), 1, atol=1e-3)


def test_sampling_is_reproducible_and_class_balanced(prepared) -> None:
    cfg, _ = prepared
    job = prepare.SceneJob(0, cfg.scenes[0], cfg.labels[0], "train")
    a, _, _ = prepare._sample_scene(job, cfg)
    b, _, _ = prepare._sample_scene(job, cfg)
    assert all(np.array_equal(x["image"], y["image"]) for x, y in zip(a, b, strict=True))
    labels = np.zeros((64, 64), np.uint8)
    labels[8:12, 8:12] = 1  # a rare class still gets its turn
    labels[40:, 40:] = 4
    origins = prepare.sample_patch_origins(labels, 16, 30, np.random.default_rng(0))
    centres = [labels[r + 8, c + 8] for r, c in origins]
    assert np.bincount(centres, minlength=5)[[0, 1, 4]].tolist() == [10, 10, 10]


def test_split_by_scene_is_seeded() -> None:
    assert prepare.split_scenes(10, 0.2, 1) == prepare.split_scenes(10, 0.2, 1)
    assert prepare.split_scenes(10, 0.2, 1).count("validation") == 2
    assert prepare.split_scenes(1, 0.5, 1) == ["train"]


def _tiny_scene(tmp: Path, name: str, labels: np.ndarray, *, x0: float = 700_000.0, image=None) -> tuple[str, str]:
    s = synth.synth_scene(9, labels.shape[0], 0)
    img = s.image if image is None else image
    transform = Affine(1.5, 0, x0, 0, -1.5, 6_600_000)
    scene = tmp / f"scene_{name}.tif"
    lab = tmp / f"labels_{name}.tif"
    scene.write_bytes(synth.encode_geotiff(img, transform, s.crs, 0))
    lab.write_bytes(synth.encode_geotiff(labels, transform, s.crs, 255))
    return str(scene), str(lab)


def test_vector_labels_rasterised_on_scene_grid(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    scene, _ = _tiny_scene(tmp_path, "v", np.zeros((64, 64), np.uint8))
    frame = gpd.GeoDataFrame(
        {"class": [3, 1]},
        geometry=[box(700_000, 6_600_000 - 96, 700_048, 6_600_000), box(700_015, 6_600_000 - 30, 700_030, 6_600_000 - 15)],
        crs="EPSG:2154",
    )
    gj, gp = tmp_path / "l.geojson", tmp_path / "l.parquet"
    frame.to_file(gj, driver="GeoJSON")
    frame.to_parquet(gp)
    _, profile = prepare.read_raster(scene, header_only=True)
    for url in (str(gj), str(gp)):
        prepare.check_pair(scene, url, None)
        lab = prepare.labels_on_scene_grid(url, profile, None)
        assert lab[15, 15] == 1  # building burnt over vegetation
        assert lab[40, 5] == 3 and lab[40, 50] == 0
        assert (lab == 1).sum() == 100


def test_bad_inputs_fail_clearly(tmp_path: Path) -> None:
    import geopandas as gpd
    from shapely.geometry import box

    scene, _ = _tiny_scene(tmp_path, "a", np.zeros((64, 64), np.uint8))
    _, far = _tiny_scene(tmp_path, "far", np.zeros((64, 64), np.uint8), x0=900_000.0)
    with pytest.raises(InvalidSceneError, match="does not overlap"):
        prepare.check_pair(scene, far, None)
    bad = gpd.GeoDataFrame({"class": [7]}, geometry=[box(700_000, 6_599_950, 700_040, 6_600_000)], crs="EPSG:2154")
    bad.to_file(tmp_path / "bad.geojson", driver="GeoJSON")
    with pytest.raises(InvalidSceneError, match=r"unknown class ids \[7\]"):
        prepare.check_pair(scene, str(tmp_path / "bad.geojson"), None)
    bad.iloc[:0].to_file(tmp_path / "empty.geojson", driver="GeoJSON")
    with pytest.raises(InvalidSceneError, match="no features"):
        prepare.check_pair(scene, str(tmp_path / "empty.geojson"), None)
    with pytest.raises(TesseraError, match="does not exist"):
        prepare.check_pair(str(tmp_path / "missing.tif"), far, None)


def test_pipeline_rejects_unknown_ids_and_counts_empty_scenes(tmp_path: Path) -> None:
    wrong = np.zeros((64, 64), np.uint8)
    wrong[10:20, 10:20] = 9
    good = _tiny_scene(tmp_path, "good", np.zeros((64, 64), np.uint8))
    odd = _tiny_scene(tmp_path, "odd", wrong)
    empty = _tiny_scene(tmp_path, "empty", np.full((64, 64), 255, np.uint8),
                        image=np.zeros((4, 64, 64), np.uint16))
    base = {"patch_size": 16, "patches_per_scene": 2, "val_fraction": 0.0}
    cfg = prepare.PrepareConfig(scenes=[good[0], odd[0]], labels=[good[1], odd[1]], output=str(tmp_path / "o1"), **base)
    with pytest.raises(InvalidSceneError, match=r"unknown class ids \[9\]"):
        prepare.build_and_run(cfg, [])
    assert not (tmp_path / "o1" / "prepare.json").exists()
    cfg = prepare.PrepareConfig(scenes=[empty[0]], labels=[empty[1]], output=str(tmp_path / "o2"), **base)
    with pytest.raises(InvalidSceneError, match="no training patch") as err:
        prepare.build_and_run(cfg, [])
    assert "no_valid_pixels" in str(err.value)
