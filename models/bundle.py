"""The model bundle contract: a SavedModel directory plus ``assets/tessera.json``.

This module reads and validates the metadata without importing TensorFlow, so the
planner, the trigger and the services can use it anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Any

import fsspec
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from transforms.core.errors import BundleError
from transforms.core.grid import halo_for

METADATA_PATH = "assets/tessera.json"
SIGNATURE = "serving_default"
INPUT_NAME = "image"
OUTPUT_NAME = "probabilities"
NODATA_CLASS = 255

SHIPPED_MODEL = Path(__file__).parent / "bundles" / "default"


class ClassInfo(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    id: int = Field(ge=0, le=254)
    name: str
    colour: str = Field(pattern=r"^#[0-9a-fA-F]{6}$")

    @property
    def rgb(self) -> tuple[int, int, int]:
        c = self.colour.lstrip("#")
        return int(c[0:2], 16), int(c[2:4], 16), int(c[4:6], 16)


class Normalisation(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    mean: list[float]
    std: list[float]
    source: str = "tensorflow-transform"

    @model_validator(mode="after")
    def _positive(self) -> Normalisation:
        if len(self.mean) != len(self.std):
            raise ValueError("normalisation mean and std must have one value per band")
        if any(s <= 0 for s in self.std):
            raise ValueError("normalisation std values must be > 0")
        return self


class BundleMetadata(BaseModel):
    """``assets/tessera.json``: what the pipeline needs to know about a model."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    version: str
    architecture: str
    bands: list[str] = Field(min_length=1)
    classes: list[ClassInfo] = Field(min_length=2)
    receptive_field: int = Field(ge=1)
    alignment: int = Field(ge=1)
    tile_size: int = Field(default=256, ge=1, description="recommended tile core size")
    normalisation: Normalisation
    input_dtype: str = "uint16"
    trained_on: dict[str, Any] = Field(default_factory=dict)
    metrics: dict[str, Any] = Field(default_factory=dict)

    @field_validator("receptive_field")
    @classmethod
    def _odd(cls, value: int) -> int:
        if value % 2 == 0:
            raise ValueError(f"receptive_field must be odd, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> BundleMetadata:
        if len(self.normalisation.mean) != len(self.bands):
            raise ValueError(
                f"normalisation has {len(self.normalisation.mean)} values for {len(self.bands)} bands"
            )
        ids = [c.id for c in self.classes]
        if ids != list(range(len(ids))):
            raise ValueError(f"class ids must be 0..K-1 in order, got {ids}")
        if self.tile_size % self.alignment:
            raise ValueError(f"tile_size {self.tile_size} is not a multiple of alignment {self.alignment}")
        return self

    @property
    def halo(self) -> int:
        return halo_for(self.receptive_field, self.alignment)

    @property
    def class_names(self) -> list[str]:
        return [c.name for c in self.classes]

    def colormap(self) -> dict[int, tuple[int, int, int, int]]:
        """GDAL colour table: class colours, transparent no-data."""
        table = {c.id: (*c.rgb, 255) for c in self.classes}
        table[NODATA_CLASS] = (0, 0, 0, 0)
        return table

    def to_json(self) -> str:
        return json.dumps(self.model_dump(mode="json"), indent=2, sort_keys=True) + "\n"


def resolve_model_path(path: str | os.PathLike[str] | None) -> str:
    """The bundle to use: the given path, ``$TESSERA_MODEL``, else the shipped default."""
    if path:
        return str(path)
    return os.environ.get("TESSERA_MODEL") or str(SHIPPED_MODEL)


def read_metadata(path: str | os.PathLike[str] | None = None) -> BundleMetadata:
    """Read and validate a bundle's metadata from any fsspec URL or local path."""
    root = resolve_model_path(path).rstrip("/")
    url = f"{root}/{METADATA_PATH}"
    try:
        with fsspec.open(url, "rt") as f:
            raw = json.load(f)
    except FileNotFoundError as exc:
        raise BundleError(
            f"{root} is not a tessera model bundle: {METADATA_PATH} is missing "
            "(export one with `tessera train` or pass --model DIR)"
        ) from exc
    except json.JSONDecodeError as exc:
        raise BundleError(f"{url} is not valid JSON: {exc}") from exc
    try:
        return BundleMetadata.model_validate(raw)
    except ValidationError as exc:
        raise BundleError(f"{url} breaks the bundle contract:\n{exc}") from exc


def content_version(files: dict[str, bytes], metadata: dict[str, Any]) -> str:
    """A version that is a content hash of the weights and the metadata (minus version)."""
    digest = hashlib.sha256()
    for name in sorted(files):
        digest.update(name.encode())
        digest.update(hashlib.sha256(files[name]).digest())
    meta = {k: v for k, v in metadata.items() if k != "version"}
    digest.update(json.dumps(meta, sort_keys=True).encode())
    return digest.hexdigest()[:16]
