"""Synthetic scenes: deterministic, georeferenced, nodata-consistent, and hard per pixel."""

from __future__ import annotations

import time

import fsspec
import numpy as np
import pytest
from rasterio.io import MemoryFile

from models import synth


@pytest.fixture(scope="module")
def scenes() -> list[synth.SynthScene]:
    return [synth.synth_scene(11, 256, i) for i in range(4)]


def test_scene_shape_dtype_and_grid(scenes: list[synth.SynthScene]) -> None:
    s = scenes[0]
    assert s.image.shape == (4, 256, 256) and s.image.dtype == np.uint16
    assert s.labels.shape == (256, 256) and s.labels.dtype == np.uint8
    assert s.crs.to_epsg() == 2154
    assert (s.transform.a, s.transform.e) == (1.5, -1.5)
    # Lambert-93 over mainland France
    assert 100_000 < s.transform.c < 1_250_000 and 6_000_000 < s.transform.f < 7_200_000


def test_nodata_is_consistent(scenes: list[synth.SynthScene]) -> None:
    for s in scenes:
        nodata_img = np.all(s.image == 0, axis=0)
        assert np.array_equal(nodata_img, s.labels == synth.NODATA_LABEL)
        assert not np.any((s.image == 0) & ~nodata_img[None])  # valid pixels are never 0
        assert set(np.unique(s.labels)) <= {0, 1, 2, 3, 4, 255}
    assert any(np.any(s.labels == 255) for s in scenes)


def test_every_class_occurs() -> None:
    counts = np.zeros(256, np.int64)
    for i in range(4):
        counts += np.bincount(synth.synth_scene(3, 512, i).labels.ravel(), minlength=256)
    share = counts[:5] / counts[:5].sum()
    assert np.all(share > 0.01), share


def test_same_seed_same_bytes_other_seed_differs(tmp_path) -> None:
    a = synth.write_scenes(str(tmp_path / "a"), 2, seed=5, size=96)
    b = synth.write_scenes(str(tmp_path / "b"), 2, seed=5, size=96)
    c = synth.write_scenes(str(tmp_path / "c"), 1, seed=6, size=96)
    def read(path: str) -> bytes:
        with open(path, "rb") as f:
            return f.read()

    for (ia, la), (ib, lb) in zip(a, b, strict=True):
        assert read(ia) == read(ib)
        assert read(la) == read(lb)
    assert read(a[0][0]) != read(c[0][0])
    assert read(a[0][0]) != read(a[1][0])


def test_cli_writes_through_fsspec() -> None:
    assert synth.main(["--output", "memory://synth-test", "--scenes", "1", "--seed", "2", "--size", "64"]) == 0
    with fsspec.open("memory://synth-test/scene_2_000.tif", "rb") as f, MemoryFile(f.read()) as mem, mem.open() as ds:
        assert (ds.count, ds.dtypes[0], ds.nodata, ds.crs.to_epsg()) == (4, "uint16", 0, 2154)
        assert ds.descriptions == ("B", "G", "R", "NIR")
    with fsspec.open("memory://synth-test/labels_2_000.tif", "rb") as f, MemoryFile(f.read()) as mem, mem.open() as ds:
        assert (ds.count, ds.dtypes[0], ds.nodata) == (1, "uint8", 255)


def test_fast_enough() -> None:
    start = time.process_time()  # CPU time: stable on a shared machine
    synth.synth_scene(0, 512, 0)
    assert time.process_time() - start < 2.0


def _standardise(image: np.ndarray, valid: np.ndarray) -> np.ndarray:
    px = image[:, valid].T.astype(np.float64)
    return (px - px.mean(0)) / px.std(0)


def test_per_pixel_spectral_rule_fails() -> None:
    """The best per-pixel lookup (majority label per spectral bin, per-scene standardised,
    fitted on the test scenes themselves) still cannot separate buildings: context needed."""
    train = [synth.synth_scene(21, 384, i) for i in range(3)]
    bins = 6
    table = np.zeros((bins**4, 5), np.int64)

    def codes(s: synth.SynthScene) -> tuple[np.ndarray, np.ndarray]:
        valid = s.labels != 255
        z = np.clip(((_standardise(s.image, valid) + 2.5) / 5 * bins).astype(int), 0, bins - 1)
        return z @ (bins ** np.arange(4)), s.labels[valid]

    for s in train:
        c, y = codes(s)
        np.add.at(table, (c, y), 1)
    rule = table.argmax(1)
    inter = union = 0
    for s in train:
        c, y = codes(s)
        pred = rule[c]
        inter += np.sum((pred == 1) & (y == 1))
        union += np.sum((pred == 1) | (y == 1))
    building_iou = inter / union
    assert building_iou < 0.5, building_iou
