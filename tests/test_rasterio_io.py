"""Scene checks and windowed reads (pure core, no Beam, no TensorFlow)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import rasterio
from helpers import synthetic_scene
from rasterio.transform import from_origin
from rasterio.windows import Window

from transforms.core.errors import InvalidSceneError, SceneNotFoundError
from transforms.core.rasterio_io import SceneReader, inspect_scene, scene_id_for


def _write(path, data, **extra):
    profile = {"driver": "GTiff", "width": data.shape[2], "height": data.shape[1], "count": data.shape[0],
               "dtype": data.dtype.name, "crs": "EPSG:32631", "transform": from_origin(0, 100, 1, 1), **extra}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)


def test_alpha_band_drives_validity(tmp_path) -> None:
    data = np.full((5, 20, 30), 500, dtype=np.uint16)
    data[4] = 65535
    data[4, :5, :] = 0  # alpha: first five rows transparent
    path = tmp_path / "alpha.tif"
    _write(path, data)
    with rasterio.open(path, "r+") as ds:  # GTiff ExtraSamples: band 5 is alpha
        ds.colorinterp = [rasterio.enums.ColorInterp.gray] + [rasterio.enums.ColorInterp.undefined] * 3 + [
            rasterio.enums.ColorInterp.alpha]
    with rasterio.open(path) as ds:
        assert ds.colorinterp[4] == rasterio.enums.ColorInterp.alpha
    reader = SceneReader(str(path), [1, 2, 3, 4])
    values, valid = reader.read(Window(0, 0, 30, 20))
    reader.close()
    assert values.shape == (20, 30, 4) and values.dtype == np.float32
    assert not valid[:5].any() and valid[5:].all()


def test_internal_mask_band_drives_validity(tmp_path) -> None:
    path = tmp_path / "masked.tif"
    data = np.full((4, 16, 16), 900, dtype=np.uint16)
    with rasterio.Env(GDAL_TIFF_INTERNAL_MASK=True), rasterio.open(
        path, "w", driver="GTiff", width=16, height=16, count=4, dtype="uint16",
        crs="EPSG:32631", transform=from_origin(0, 16, 1, 1),
    ) as ds:
        ds.write(data)
        mask = np.full((16, 16), 255, dtype=np.uint8)
        mask[:, :4] = 0
        ds.write_mask(mask)
    reader = SceneReader(str(path), [4, 3, 2, 1], scale=2.0)
    values, valid = reader.read(Window(0, 0, 16, 16))
    reader.close()
    assert not valid[:, :4].any() and valid[:, 4:].all()
    assert float(values.max()) == 1800.0


def test_nodata_value_drives_validity(tmp_path) -> None:
    path = tmp_path / "nd.tif"
    synthetic_scene(path, 30, 30, nodata_box=(0, 10, 0, 30))
    reader = SceneReader(str(path), [1, 2, 3, 4])
    _, valid = reader.read(Window(0, 0, 30, 30))
    reader.close()
    assert not valid[:10].any() and valid[10:].all()


def test_inspect_reports_the_problem(tmp_path) -> None:
    with pytest.raises(SceneNotFoundError, match="missing.tif: no such file"):
        inspect_scene(str(tmp_path / "missing.tif"))
    synthetic_scene(tmp_path / "two.tif", 10, 10, bands=2)
    with pytest.raises(InvalidSceneError, match="has 2 band"):
        inspect_scene(str(tmp_path / "two.tif"), bands_required=4)
    info = inspect_scene(str(tmp_path / "two.tif"))
    assert (info.width, info.height, info.count, info.epsg) == (10, 10, 2, 32631)
    assert scene_id_for("gs://b/Some Dir/SCENE v2.TIF") == "scene-v2"


def test_model_info_prints_metadata_with_path(tiny_bundle) -> None:
    out = subprocess.run([sys.executable, "-m", "tessera", "model", "info", tiny_bundle],
                         capture_output=True, text=True, check=True).stdout
    doc = json.loads(out)
    assert doc["path"] == tiny_bundle and doc["alignment"] == 4 and doc["receptive_field"] % 2 == 1
    shipped = json.loads(subprocess.run([sys.executable, "-m", "tessera", "model", "info"],
                                        capture_output=True, text=True, check=True).stdout)
    assert shipped["path"].endswith("models/bundles/default") and len(shipped["bands"]) == 4


@pytest.mark.parametrize(
    "dtype,nodata,bands",
    [
        ("uint16", 0, [3, 1, 2]),
        ("uint16", 0, [3, 1, 4, 2]),  # one 8-byte word per pixel
        ("uint16", 7, [3, 1, 4, 2]),
        ("int16", -9999, [3, 1, 2]),
        ("int16", -9999, [2, 1]),  # one 4-byte word
        ("uint8", 255, [2, 1]),  # one 2-byte word
        ("float32", -1.5, [3, 1, 2]),
        ("float32", float("nan"), [3, 1, 2]),
        ("float32", float("nan"), [2, 1]),  # 8 bytes, but NaN has many bit patterns
    ],
)
def test_mask_from_pixels_equals_gdal_dataset_mask(
    tmp_path: Path, dtype: str, nodata: float, bands: list[int]
) -> None:
    """The reader derives the per-band-nodata mask from the pixels it read; it must be
    exactly GDAL's dataset mask, including pixels where only some bands are nodata."""
    rng = np.random.default_rng(3)
    count = len(bands)
    data = rng.integers(1, 50, (count, 40, 50)).astype(dtype)
    holes = rng.random((count, 40, 50))
    data[holes < 0.3] = nodata  # some pixels nodata in one or two bands only
    data[:, :5, :] = nodata  # a strip nodata in every band
    path = tmp_path / "nodata.tif"
    profile = {"driver": "GTiff", "width": 50, "height": 40, "count": count, "dtype": dtype, "nodata": nodata,
               "crs": "EPSG:32631", "transform": rasterio.Affine(10, 0, 500000, 0, -10, 4600000)}
    with rasterio.open(path, "w", **profile) as ds:
        ds.write(data)
    window = Window(3, 2, 40, 30)
    with rasterio.open(path) as ds:
        expected = ds.dataset_mask(window=window) != 0
    reader = SceneReader(str(path), bands)
    assert reader._nodata_mask
    _, valid = reader.read(window)
    reader.close()
    assert np.array_equal(valid, expected)
    assert not valid[:3].any() and valid.any() and not valid.all()


@pytest.mark.parametrize("interleave", ["pixel", "band"])
def test_values_come_pixel_interleaved_in_band_mapping_order(tmp_path: Path, interleave: str) -> None:
    """``read`` lays values out ``(h, w, bands)`` in the mapping's order, whatever the
    file's interleaving: the layout the model input is filled from."""
    rng = np.random.default_rng(5)
    data = rng.integers(1, 4000, (4, 70, 90)).astype("uint16")
    path = tmp_path / f"{interleave}.tif"
    _write(path, data, tiled=True, blockxsize=32, blockysize=32, interleave=interleave, compress="deflate")
    window = Window(7, 5, 60, 50)
    reader = SceneReader(str(path), [3, 1, 4, 2], scale=0.5)
    values, valid = reader.read(window)
    raw, _ = reader.read(window, raw=True)
    reader.close()
    expected = np.moveaxis(data[[2, 0, 3, 1], 5:55, 7:67], 0, -1)
    assert raw.dtype == np.uint16 and np.array_equal(raw, expected)
    assert values.dtype == np.float32 and np.array_equal(values, expected.astype(np.float32) * 0.5)
    assert valid.shape == (50, 60) and valid.all()
