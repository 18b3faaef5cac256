"""Product profiles: which model, which bands, which classes, what post-processing.

A profile is YAML, validated once (unknown keys rejected) and then passed as a value.
The shipped profiles live in ``transforms/core/profiles/``; ``--product`` also takes a
path or URL to a YAML file of the same shape.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import fsspec
import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from transforms.core.errors import ConfigError

PROFILES_DIR = Path(__file__).parent / "profiles"
DEFAULT_PRODUCT = "landcover"


class SceneFilter(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    band_counts: list[int] | None = None
    dtypes: list[str] | None = None


class ProductProfile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[a-z0-9][a-z0-9_-]*$")
    title: str = ""
    description: str = ""
    model: str | None = Field(default=None, description="bundle path/URL; None = shipped default")
    bands: list[int] | None = Field(
        default=None,
        description="1-based source band for each model band, in the model's order; None = 1..C",
    )
    scale: float = Field(default=1.0, gt=0, description="multiplies source values before the model")
    classes: list[str] | None = Field(default=None, description="classes this product keeps; None = all")
    postprocess: dict[str, Any] = Field(default_factory=dict)
    applies_to: SceneFilter = Field(default_factory=lambda: SceneFilter(),
                                    description="which arriving scenes the trigger routes here")

    def accepts(self, band_count: int, dtype: str) -> bool:
        """Whether the trigger should route a scene with this layout to this product."""
        f = self.applies_to
        return (f.band_counts is None or band_count in f.band_counts) and (
            f.dtypes is None or dtype in f.dtypes
        )

    def band_indexes(self, model_bands: int) -> list[int]:
        bands = self.bands or list(range(1, model_bands + 1))
        if len(bands) != model_bands:
            raise ConfigError(
                f"product {self.name!r} maps {len(bands)} source bands but the model takes "
                f"{model_bands}; give one source band per model band"
            )
        if any(b < 1 for b in bands):
            raise ConfigError(f"product {self.name!r}: band indexes are 1-based, got {bands}")
        return bands

    def with_overrides(self, *, bands: list[int] | None = None, scale: float | None = None,
                       model: str | None = None) -> ProductProfile:
        update: dict[str, Any] = {}
        if bands is not None:
            update["bands"] = bands
        if scale is not None:
            update["scale"] = scale
        if model is not None:
            update["model"] = model
        return self.model_copy(update=update)


def shipped_profiles() -> list[str]:
    return sorted(p.stem for p in PROFILES_DIR.glob("*.yaml"))


def load_profile(name_or_url: str | None = None) -> ProductProfile:
    """A shipped profile by name, or a YAML file by path/URL."""
    name = name_or_url or DEFAULT_PRODUCT
    shipped = PROFILES_DIR / f"{name}.yaml"
    if shipped.exists():
        url = str(shipped)
    elif name.endswith((".yaml", ".yml")):
        url = name
    else:
        raise ConfigError(f"unknown product {name!r}; shipped: {', '.join(shipped_profiles())}, or give a YAML path")
    try:
        with fsspec.open(url, "rt") as f:
            raw = yaml.safe_load(f)
    except FileNotFoundError as exc:
        raise ConfigError(f"product profile {url} does not exist") from exc
    except yaml.YAMLError as exc:
        raise ConfigError(f"product profile {url} is not valid YAML: {exc}") from exc
    try:
        return ProductProfile.model_validate(raw)
    except ValidationError as exc:
        raise ConfigError(f"product profile {url} is invalid:\n{exc}") from exc
