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


def test_aligned_model_inputs_reach_tensorflow_without_a_copy(tiny_bundle: str) -> None:
    """64-byte aligned inputs are shared with TensorFlow (DLPack); anything else is
    copied, because TensorFlow aborts the process on a less aligned buffer."""
    import gc

    import numpy as np

    from models.bundle_runtime import as_tensor, load_bundle
    from transforms.core.buffers import TENSOR_ALIGNMENT, aligned_empty

    rng = np.random.default_rng(0)
    shape = (1, 32, 32, 4)
    aligned = aligned_empty(shape)
    assert aligned.ctypes.data % TENSOR_ALIGNMENT == 0 and aligned.flags.c_contiguous and aligned.shape == shape
    aligned[...] = rng.uniform(1, 4000, shape)
    shared = as_tensor(aligned)
    aligned[0, 0, 0, 0] += 1  # the tensor sees it: the same memory
    assert float(shared[0, 0, 0, 0]) == aligned[0, 0, 0, 0]

    offset = aligned_empty((int(np.prod(shape)) + 4,))[4:].reshape(shape)  # 16 bytes off
    readonly = aligned.copy()
    readonly.flags.writeable = False
    for other in (offset, readonly, aligned[:, ::2]):
        if other.flags.writeable:
            other[...] = rng.uniform(1, 4000, other.shape)
        before = np.array(other)
        copied = as_tensor(other)
        if other.flags.writeable:
            other += 1
        np.testing.assert_array_equal(copied.numpy(), before)

    bundle = load_bundle(tiny_bundle)
    offset[...] = aligned
    np.testing.assert_array_equal(bundle.planes(aligned), bundle.planes(offset))

    # the tensor keeps the array alive: dropping every name of it is safe
    kept = as_tensor(aligned_empty(shape))
    expected = kept.numpy().copy()
    del aligned, shared
    gc.collect()
    np.testing.assert_array_equal(kept.numpy(), expected)


@pytest.mark.parametrize("classes", [1, 2, 5, 9])
def test_planes_equal_argmax_ties_included(classes: int) -> None:
    """The running-maximum planes (class count known when tracing) equal tf.argmax and
    numpy's argmax, the first maximum winning ties, and the rounded confidence."""
    import numpy as np
    import tensorflow as tf

    from models.bundle_runtime import CONFIDENCE_SCALE, _planes_graph, probabilities_to_planes

    rng = np.random.default_rng(classes)
    probs = (np.round(rng.random((2, 17, 23, classes)) * 4) / 4).astype(np.float32)  # many ties
    probs[0, 0, 0] = 0.5  # a tie across every class
    unknown = tf.function(_planes_graph, input_signature=[tf.TensorSpec([None] * 4, tf.float32)])
    expected = np.stack([np.argmax(probs, axis=-1).astype(np.uint8),
                         np.round(probs.max(axis=-1) * CONFIDENCE_SCALE).astype(np.uint8)], axis=1)
    np.testing.assert_array_equal(probabilities_to_planes(probs), expected)
    np.testing.assert_array_equal(unknown(tf.constant(probs)).numpy(), expected)
