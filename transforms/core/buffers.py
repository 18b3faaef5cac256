"""Model-input memory: 64-byte aligned arrays, reused from tile to tile.

TensorFlow takes an aligned float32 array without copying it (DLPack, see
``models.bundle_runtime.as_tensor``); numpy's own large allocations start 16 bytes
into a page. Reusing the buffers matters as much: every fresh 160 MB tile buffer
(3168^2 x 4 float32) is faulted in by the kernel, and with transparent huge pages
(numpy asks for them) that means compacting memory: 0.17-0.24 s of system time per
tile on a 2-core worker, on the low-priority reading thread that must finish before
the model's next call. A buffer comes back once the model has answered for it.
"""

from __future__ import annotations

import threading
import weakref

import numpy as np

TENSOR_ALIGNMENT = 64  # bytes: Eigen's largest alignment (AVX-512), which TensorFlow checks


def aligned_empty(shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
    """An uninitialised C-contiguous array whose data starts on a 64-byte boundary."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + TENSOR_ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % TENSOR_ALIGNMENT
    return raw[start : start + nbytes].view(dtype).reshape(shape)


class BufferPool:
    """Aligned arrays handed out by ``take`` and reused after ``give_back``.

    ``give_back(array)`` accepts only an array this pool handed out (the same memory)
    and still tracks; anything else (a copy a runner decoded in another process, an
    array of the caller's own) is ignored, so callers need no bookkeeping. The caller
    must not touch an array after giving it back. At most ``keep`` free arrays are
    kept, the most recently returned; a pool that never gets its arrays back just
    allocates.
    """

    def __init__(self, keep: int = 2) -> None:
        self.keep = keep
        self._lock = threading.Lock()
        self._free: list[np.ndarray] = []
        # data address -> array handed out; weak, so arrays that never come back
        # (consumed in another process, dropped on an error path) are not kept alive
        self._out: weakref.WeakValueDictionary[int, np.ndarray] = weakref.WeakValueDictionary()

    def take(self, shape: tuple[int, ...], dtype: np.dtype | type = np.float32) -> np.ndarray:
        shape, dtype = tuple(int(n) for n in shape), np.dtype(dtype)
        with self._lock:
            found = [i for i, a in enumerate(self._free) if a.shape == shape and a.dtype == dtype]
            array = self._free.pop(found[-1]) if found else None
        if array is None:
            array = aligned_empty(shape, dtype)
        with self._lock:
            self._out[array.ctypes.data] = array
        return array

    def give_back(self, array: np.ndarray) -> bool:
        """Return ``array`` for reuse; True if it was this pool's."""
        with self._lock:
            mine = self._out.get(array.ctypes.data)
            if mine is None or mine.shape != array.shape or mine.dtype != array.dtype:
                return False
            del self._out[array.ctypes.data]
            self._free.append(mine)
            del self._free[: max(0, len(self._free) - self.keep)]
        return True


# One per worker process, shared by the reading and the model step. Three free buffers
# cover the steady state: the model input just answered for, the one the next read fills
# while the model runs, and the raw pixels of the last read.
MODEL_INPUTS = BufferPool(keep=3)
