"""BufferPool behaviour and that the model actually reuses pooled memory."""

from __future__ import annotations

import numpy as np
import pytest

from smallmind import BufferPool, SyntheticCorpus, create_model, train_steps


def test_rent_give_back_reuses_same_buffer():
    pool = BufferPool()
    a = pool.rent((4, 5), np.float32)
    assert a.shape == (4, 5) and a.dtype == np.float32 and pool.misses == 1
    pool.give_back(a)
    b = pool.rent((4, 5), np.float32)
    assert b is a and pool.hits == 1


def test_pool_is_keyed_by_shape_and_dtype():
    pool = BufferPool()
    a = pool.rent((4, 5), np.float32)
    pool.give_back(a)
    assert pool.rent((5, 4), np.float32) is not a
    assert pool.rent((4, 5), np.float64) is not a
    assert pool.rent(20, np.float32) is not a
    assert pool.rent((4, 5), np.float32) is a


def test_zero_and_limits():
    pool = BufferPool(max_per_key=1)
    a, b = pool.rent(8), pool.rent(8)
    a.fill(3)
    pool.give_back(a)
    pool.give_back(b)  # over the per-key limit: dropped
    assert len(pool) == 1 and pool.held_bytes == a.nbytes
    z = pool.rent(8, zero=True)
    assert z is a and not z.any()
    small = BufferPool(max_bytes=16)
    small.give_back(np.empty(8, np.float32))
    assert len(small) == 0
    pool.clear()
    assert len(pool) == 0 and pool.held_bytes == 0


def test_give_back_rejects_views_and_double_return():
    pool = BufferPool()
    a = pool.rent((4, 4))
    with pytest.raises(ValueError):
        pool.give_back(a[1:])
    with pytest.raises(ValueError):
        pool.give_back(a.T)
    pool.give_back(a)
    with pytest.raises(ValueError):
        pool.give_back(a)


def test_model_steady_state_hits_pool():
    model = create_model("tiny", seed=0)
    tokens = np.arange(2 * 16).reshape(2, 16) % 256
    model.forward(tokens)
    misses = model.pool.misses
    for _ in range(3):
        model.forward(tokens)
    assert model.pool.misses == misses and model.pool.hits > 0
    corpus = SyntheticCorpus(256, length=2000)
    train_steps(model, corpus, 2, 4, seq_len=16)
    misses = model.pool.misses
    train_steps(model, corpus, 3, 4, seq_len=16)
    assert model.pool.misses == misses
