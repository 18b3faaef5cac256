"""The in-process model runtime asks TensorFlow for its caching CPU allocator."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from models.bundle_runtime import CPU_ALLOCATOR_ENV, use_caching_cpu_allocator

ROOT = Path(__file__).resolve().parents[1]

PROBE = """
import sys
import numpy as np
from models.bundle_runtime import load_bundle
load_bundle(sys.argv[1])(np.zeros((1, 32, 32, 4), np.float32))
import tensorflow as tf
try:
    print("stats", sorted(tf.config.experimental.get_memory_info("CPU:0")))
except ValueError as exc:  # TF's default CPU allocator keeps no statistics
    print("no-stats", exc)
"""


@pytest.mark.e2e
def test_load_bundle_runs_on_the_caching_allocator(tiny_bundle: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != CPU_ALLOCATOR_ENV}
    env["TF_CPP_MIN_LOG_LEVEL"] = "2"
    out = subprocess.run([sys.executable, "-c", PROBE, tiny_bundle], cwd=ROOT, env=env,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr[-2000:]
    # only the BFC allocator reports current/peak bytes for the CPU device
    assert "stats ['current', 'peak']" in out.stdout, out.stdout + out.stderr[-2000:]


def test_a_users_allocator_choice_wins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(CPU_ALLOCATOR_ENV, "false")
    use_caching_cpu_allocator()
    assert os.environ[CPU_ALLOCATOR_ENV] == "false"
    monkeypatch.delenv(CPU_ALLOCATOR_ENV)
    use_caching_cpu_allocator()
    assert os.environ[CPU_ALLOCATOR_ENV] == "true"
