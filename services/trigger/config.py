"""Trigger settings: validated once, from flags (highest), ``TESSERA_*`` env vars, defaults.

Lists come from the environment comma-separated (``TESSERA_PRODUCTS=landcover,water``).
"""

from __future__ import annotations

import os
from typing import Annotated, Any, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from services.trigger.auth import GOOGLE_CERTS_URL
from transforms.core.rasterio_io import DEFAULT_MAX_PIXELS

CommaList = Annotated[list[str], NoDecode]


def _split(value: Any) -> Any:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    return value


class TriggerSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TESSERA_", extra="forbid", frozen=True)

    host: str = "127.0.0.1"
    port: int = Field(default=8080, ge=0, le=65535)
    storage_root: str = Field(default="gs://", description="bucket B maps to ROOT/B")
    output: str = "tessera-output"
    ledger: str = "sqlite:///tessera-trigger.db"
    launcher: Literal["local", "dataflow", "kubernetes"] = "local"
    auth: Literal["oidc", "none"] = "oidc"
    audience: str | None = None
    allowed_sa: CommaList = Field(default_factory=list)
    certs_url: str = GOOGLE_CERTS_URL
    products: CommaList = Field(default_factory=lambda: ["landcover"])
    max_workers: int = Field(default=2, ge=1, le=256)
    max_pixels: int = Field(default=DEFAULT_MAX_PIXELS, ge=1)
    max_body_bytes: int = Field(default=1 << 20, ge=1024)
    job_timeout_s: float | None = Field(default=None, gt=0)
    beam_args: CommaList = Field(default_factory=list, description="passed to every infer job as is")

    dataflow_project: str | None = None
    dataflow_region: str | None = None
    dataflow_temp_location: str | None = None
    dataflow_staging_location: str | None = None
    dataflow_sdk_container_image: str | None = None
    dataflow_service_account_email: str | None = None
    dataflow_subnetwork: str | None = None
    dataflow_no_use_public_ips: bool = True

    k8s_image: str | None = None
    k8s_namespace: str = "tessera"
    k8s_service_account: str = "tessera-infer"
    k8s_cpu: str = "2"
    k8s_memory: str = "4Gi"
    k8s_gpus: int = Field(default=0, ge=0)
    k8s_node_selector: dict[str, str] = Field(default_factory=dict)
    k8s_backoff_limit: int = Field(default=2, ge=0)
    k8s_ttl_seconds: int = Field(default=86400, ge=0)

    _split_lists = field_validator("allowed_sa", "products", "beam_args", mode="before")(_split)

    @field_validator("output")
    @classmethod
    def _absolute_output(cls, value: str) -> str:
        # child processes may run elsewhere; a local output must not depend on their cwd
        return value if "://" in value else os.path.abspath(value)

    @model_validator(mode="after")
    def _auth_needs_audience(self) -> TriggerSettings:
        if self.auth == "oidc" and not self.audience:
            raise ValueError("--auth oidc needs --audience (the URL the push subscription or "
                             "Eventarc trigger targets); pass --auth none to disable auth explicitly")
        if not self.products:
            raise ValueError("--products needs at least one product profile")
        return self
