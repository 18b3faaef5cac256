"""`tessera infer` end to end on DirectRunner: exactness, no-data, outputs, reruns, bad input."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import numpy as np
import pytest
import rasterio
from apache_beam.ml.inference.base import ModelHandler
from helpers import reference_probabilities, synthetic_scene

from beam_pipelines.infer import main as infer_main
from beam_pipelines.infer import run_infer
from beam_pipelines.runner import make_pipeline, pipeline_options
from models.bundle import read_metadata
from models.handlers import BundleModelHandler
from transforms.core import postprocess
from transforms.core.products import load_profile

H, W = 203, 157  # odd sizes: remainders on both axes


@pytest.fixture(scope="module")
def scene(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, np.ndarray]:
    path = tmp_path_factory.mktemp("scenes") / "Odd Scene.tif"
    # a no-data block covering whole tiles (skipped) and cutting others
    data = synthetic_scene(path, H, W, seed=7, nodata_box=(0, 70, 0, 90), blocksize=64)
    return path, data


@pytest.fixture(scope="module")
def reference(scene, tiny_bundle: str) -> np.ndarray:
    _, data = scene
    meta = read_metadata(tiny_bundle)
    predict = BundleModelHandler(tiny_bundle).load_model()
    probs = reference_probabilities(predict, data, meta.halo, meta.alignment)
    classes = probs.argmax(-1).astype(np.uint8)
    classes[(data == 0).all(axis=0)] = 255
    return classes


def tree_digest(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


@pytest.mark.e2e
@pytest.mark.parametrize("tile_size", [32, 64])
def test_tiled_pipeline_equals_whole_scene(scene, reference, tiny_bundle, tmp_path, tile_size) -> None:
    path, _ = scene
    report = run_infer([str(path)], str(tmp_path), model=tiny_bundle, tile_size=tile_size)
    assert report.ok, report.failed
    assert report.counters["tiles_skipped_nodata"] >= 1
    with rasterio.open(tmp_path / "landcover" / "odd-scene" / "classes.tif") as ds:
        classes = ds.read(1)
        assert ds.nodata == 255
        assert ds.colormap(1)[1][:3] == (215, 48, 31)
    assert np.array_equal(classes, reference)
    assert not (tmp_path / ".tessera-tmp").exists()


@pytest.mark.e2e
def test_outputs_are_valid_and_reruns_identical(scene, tiny_bundle, tmp_path) -> None:
    from rio_cogeo.cogeo import cog_validate

    from transforms.core.stac import validate_core

    path, _ = scene
    out = tmp_path / "out"
    assert run_infer([str(path)], str(out), model=tiny_bundle, tile_size=32).ok
    first = tree_digest(out)
    assert {"catalog.json", "landcover/collection.json", "landcover/odd-scene/odd-scene.json",
            "landcover/odd-scene/classes.tif", "landcover/odd-scene/confidence.tif",
            "landcover/odd-scene/quicklook.png"} <= set(first)

    for name, codec in (("classes.tif", "deflate"), ("confidence.tif", "zstd")):
        valid, errors, _ = cog_validate(str(out / "landcover" / "odd-scene" / name))
        assert valid, errors
        with rasterio.open(out / "landcover" / "odd-scene" / name) as ds:
            assert ds.compression.name == codec
    item = json.loads((out / "landcover/odd-scene/odd-scene.json").read_text())
    validate_core(item)
    validate_core(json.loads((out / "landcover/collection.json").read_text()))
    validate_core(json.loads((out / "catalog.json").read_text()))
    props = item["properties"]
    assert props["tessera:source"]["url"] == str(path) and props["tessera:source"]["size"] > 0
    assert props["proj:shape"] == [H, W] and props["mlm:name"] == "tessera-reference"
    assert [link["href"] for link in item["links"] if link["rel"] == "derived_from"] == [str(path)]
    assert item["assets"]["classes"]["classification:classes"][1]["name"] == "building"
    # the areas counted tile by tile are what a pass over the published class COG finds
    names = [c["name"] for c in item["assets"]["classes"]["classification:classes"]]
    _, scanned = postprocess.apply(load_profile("landcover"), str(out / "landcover/odd-scene/classes.tif"),
                                   str(tmp_path / "scan"), names)
    assert props["tessera:class_areas_m2"] == scanned["tessera:class_areas_m2"]
    assert props["tessera:valid_area_m2"] == scanned["tessera:valid_area_m2"] > 0

    # a rerun, with every bundle replayed twice, rewrites the same bytes
    assert run_infer([str(path)], str(out), model=tiny_bundle, tile_size=32,
                     beam_args=["--direct_runner_bundle_repeat=2"]).ok
    assert tree_digest(out) == first


@pytest.mark.e2e
def test_bad_scenes_fail_cleanly_and_others_complete(scene, tiny_bundle, tmp_path, capsys) -> None:
    good, _ = scene
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "notraster.tif").write_text("this is not a GeoTIFF\n")
    full = bad / "full.tif"
    synthetic_scene(full, 96, 96, seed=1)
    truncated = bad / "truncated.tif"
    truncated.write_bytes(full.read_bytes()[: os.path.getsize(full) // 2])
    synthetic_scene(bad / "nocrs.tif", 40, 40, crs=None)
    synthetic_scene(bad / "twoband.tif", 40, 40, bands=2)
    synthetic_scene(bad / "huge.tif", 250, 250)
    out = tmp_path / "out"
    scenes = [str(good), str(bad / "missing.tif"), str(bad / "notraster.tif"), str(truncated),
              str(bad / "nocrs.tif"), str(bad / "twoband.tif"), str(bad / "huge.tif")]
    code = infer_main(["--scenes", *scenes, "--output", str(out), "--model", tiny_bundle,
                       "--tile-size", "32", "--max-pixels", "40000"])
    assert code == 1
    err = capsys.readouterr().err
    expectations = {
        "missing": "no such file", "notraster": "not a readable raster", "truncated": "could not be read",
        "nocrs": "has no CRS", "twoband": "has 2 band(s)", "huge": "over the cap",
    }
    for name, problem in expectations.items():
        line = next((ln for ln in err.splitlines() if f"landcover/{name} " in ln), "")
        assert problem in line, (name, err)
    published = sorted(p.name for p in (out / "landcover").iterdir() if p.is_dir())
    assert published == ["odd-scene"]
    assert not (out / ".tessera-tmp").exists()


@pytest.mark.e2e
def test_memory_filesystem_in_and_out(tiny_bundle, tmp_path) -> None:
    import fsspec

    local = tmp_path / "m.tif"
    synthetic_scene(local, 50, 70, seed=3)
    fs = fsspec.filesystem("memory")
    fs.pipe("/in/m.tif", local.read_bytes())
    report = run_infer(["memory://in/m.tif"], "memory://out", model=tiny_bundle, tile_size=32)
    assert report.ok, report.failed
    assert fs.exists("/out/landcover/m/classes.tif") and fs.exists("/out/catalog.json")
    assert not fs.exists("/out/.tessera-tmp")


class _FailingHandler(ModelHandler):
    """A real ModelHandler whose model refuses batches holding a NaN tile."""

    def __init__(self) -> None:
        super().__init__(min_batch_size=1, max_batch_size=2)

    def load_model(self) -> str:
        return "model"

    def run_inference(self, batch, model, inference_args=None):
        if any(np.isnan(x).any() for x in batch):
            raise ValueError("NaN in the input")
        return [np.zeros((2, *x.shape[:2]), dtype=np.uint8) for x in batch]

    def batch_elements_kwargs(self):
        return {"min_batch_size": 1, "max_batch_size": 2}


def test_run_model_batches_and_dead_letters_a_failed_batch_per_tile() -> None:
    """Five tiles in batches of two; the batch holding the bad tile fails as a whole:
    its two tiles come out of ``failed`` naming scene, tile and error, the others pass."""
    from types import SimpleNamespace

    import apache_beam as beam
    from apache_beam.testing.util import assert_that, equal_to

    from transforms.inference import RunModel

    def key(i: int) -> SimpleNamespace:
        job = SimpleNamespace(key="landcover/s", scene=SimpleNamespace(url="file:///s.tif"))
        return SimpleNamespace(task=SimpleNamespace(job=job, index=f"t{i}"))

    tiles = [(key(i), np.full((4, 4, 3), np.nan if i == 2 else i, dtype=np.float32)) for i in range(5)]
    with make_pipeline(pipeline_options(None)) as p:
        predicted, failed = p | beam.Create(tiles, reshuffle=False) | RunModel(_FailingHandler())
        assert_that(predicted | beam.Map(lambda kv: (kv[0].task.index, kv[1].shape)),
                    equal_to([(f"t{i}", (2, 4, 4)) for i in (0, 1, 4)]), label="ok")
        assert_that(failed, equal_to([
            ("landcover/s", "file:///s.tif", f"file:///s.tif: tile t{i}: ValueError: NaN in the input") for i in (2, 3)
        ]), label="dead letters")
