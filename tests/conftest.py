"""Shared fixtures. Heavy things (TensorFlow models, servers) are session-scoped."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")
TESTS = Path(__file__).parent
sys.path.insert(0, str(TESTS))  # plain helper modules (helpers.py, gcs_server.py, ...)

import gcs_server  # noqa: E402  (sets GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT before gcsfs loads)

REPO = TESTS.parent
SHARED_DATA = REPO.parent / "shared" / "data"
LANDSAT = SHARED_DATA / "RGB.byte.tif"


@pytest.fixture(scope="session")
def landsat_scene() -> Path:
    if not LANDSAT.exists():
        pytest.skip(f"sample scene not found at {LANDSAT}")
    return LANDSAT


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A small reference network (alignment 4) exported once per session."""
    from models.reference import export_reference

    path = tmp_path_factory.mktemp("bundles") / "tiny-l2"
    export_reference(str(path), levels=2, tile_size=32)
    return str(path)


@pytest.fixture(scope="session")
def fake_gcs(tmp_path_factory: pytest.TempPathFactory):
    """A real GCS JSON-API server (fake-gcs-server) on 127.0.0.1; yields its endpoint."""
    with gcs_server.run_fake_gcs(tmp_path_factory.mktemp("gcs")) as endpoint:
        yield endpoint
