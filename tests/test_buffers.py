"""Model-input buffers: aligned, reused only once given back, never handed out twice."""

from __future__ import annotations

import gc

import numpy as np

from transforms.core.buffers import TENSOR_ALIGNMENT, BufferPool, aligned_empty


def test_aligned_empty_is_aligned_and_contiguous() -> None:
    for shape in [(1,), (3, 5, 4), (2, 17, 19, 4)]:
        a = aligned_empty(shape)
        assert a.ctypes.data % TENSOR_ALIGNMENT == 0 and a.flags.c_contiguous and a.shape == shape
        assert a.dtype == np.float32


def test_a_buffer_is_reused_only_after_it_comes_back() -> None:
    pool = BufferPool(keep=2)
    a = pool.take((8, 8, 4))
    b = pool.take((8, 8, 4))
    assert not np.shares_memory(a, b)  # both out: two buffers
    assert pool.give_back(a)
    c = pool.take((8, 8, 4))
    assert c is a  # the returned one, not a third
    assert not pool.give_back(a.copy())  # a copy is not the pool's
    assert not pool.give_back(np.zeros((8, 8, 4), np.float32))  # nor a caller's own array
    assert pool.give_back(c) and not pool.give_back(c)  # once only
    d = pool.take((4, 4, 4))  # another shape never gets a wrong-sized buffer
    assert d.shape == (4, 4, 4) and not np.shares_memory(d, c)


def test_the_pool_keeps_at_most_keep_free_buffers() -> None:
    pool = BufferPool(keep=1)
    a, b = pool.take((4, 4)), pool.take((4, 4))
    pool.give_back(a)
    pool.give_back(b)
    assert pool.take((4, 4)) is b  # the most recent stays; a was dropped
    assert not np.shares_memory(pool.take((4, 4)), a)


def test_arrays_that_never_come_back_are_not_kept_alive() -> None:
    pool = BufferPool()
    a = pool.take((16, 16))
    address = a.ctypes.data
    del a
    gc.collect()
    assert address not in pool._out
