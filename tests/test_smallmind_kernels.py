"""smallmind.kernels against textbook reference formulas and finite differences."""

from __future__ import annotations

import math

import numpy as np
import pytest

from smallmind import kernels as K

RNG = np.random.default_rng(1234)


def rand(*shape, dtype=np.float32, scale=1.0):
    return (RNG.standard_normal(shape) * scale).astype(dtype)


def numgrad(f, x: np.ndarray, eps: float = 1e-6) -> np.ndarray:
    """Central finite differences of scalar f() w.r.t. every entry of x (mutated in place)."""
    g = np.zeros_like(x)
    it = np.nditer(x, flags=["multi_index"])
    for _ in it:
        i = it.multi_index
        old = x[i]
        x[i] = old + eps
        fp = f()
        x[i] = old - eps
        fm = f()
        x[i] = old
        g[i] = (fp - fm) / (2 * eps)
    return g


# ---------------------------------------------------------------- references
def ref_matmul(a, b):
    m, k = a.shape
    _, n = b.shape
    c = np.zeros((m, n), dtype=np.float64)
    for i in range(m):
        for j in range(n):
            c[i, j] = sum(float(a[i, p]) * float(b[p, j]) for p in range(k))
    return c


def ref_gelu(v: float) -> float:
    return 0.5 * v * (1 + math.tanh(math.sqrt(2 / math.pi) * (v + 0.044715 * v**3)))


def ref_softmax_row(row):
    m = max(row)
    e = [math.exp(v - m) for v in row]
    s = sum(e)
    return [v / s for v in e]


def ref_layer_norm_row(row, g, b, eps=1e-5):
    n = len(row)
    mu = sum(row) / n
    var = sum((v - mu) ** 2 for v in row) / n
    return [(v - mu) / math.sqrt(var + eps) * gi + bi for v, gi, bi in zip(row, g, b, strict=True)]


# ---------------------------------------------------------------- forward kernels
def test_matmul_matches_loops():
    a, b = rand(7, 5), rand(5, 6)
    np.testing.assert_allclose(K.matmul(a, b), ref_matmul(a, b), rtol=1e-5, atol=1e-5)


def test_matmul_batched_and_out():
    a, b = rand(3, 4, 5), rand(3, 5, 2)
    out = np.empty((3, 4, 2), dtype=np.float32)
    res = K.matmul(a, b, out=out)
    assert res is out
    for i in range(3):
        np.testing.assert_allclose(out[i], ref_matmul(a[i], b[i]), rtol=1e-5, atol=1e-5)


def test_matmul_rejects_bad_shapes():
    with pytest.raises(ValueError):
        K.matmul(rand(3, 4), rand(5, 2))
    with pytest.raises(ValueError):
        K.matmul(rand(3), rand(3, 2))


def test_gelu_matches_formula_and_out():
    x = rand(257, scale=3.0)
    out = np.full_like(x, np.nan)
    res = K.gelu(x, out=out)
    assert res is out and res.dtype == np.float32
    np.testing.assert_allclose(out, [ref_gelu(float(v)) for v in x], rtol=1e-5, atol=1e-6)
    # aliasing out with the input is allowed
    y = x.copy()
    K.gelu(y, out=y)
    np.testing.assert_allclose(y, out, rtol=1e-6, atol=1e-7)


def test_softmax_matches_reference_and_is_stable():
    x = rand(6, 9, scale=4.0)
    x[0] += 1000.0  # would overflow a naive exp
    out = np.empty_like(x)
    assert K.softmax(x, out=out) is out
    for i in range(x.shape[0]):
        np.testing.assert_allclose(
            out[i], ref_softmax_row([float(v) for v in x[i]]), rtol=1e-5, atol=1e-7
        )
    assert np.all(np.isfinite(out))
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-6)


def test_softmax_other_axis():
    x = rand(5, 4)
    np.testing.assert_allclose(K.softmax(x, axis=0), K.softmax(x.T).T, rtol=1e-6)


def test_layer_norm_matches_reference():
    x, g, b = rand(5, 12), rand(12), rand(12)
    out = np.empty_like(x)
    assert K.layer_norm(x, g, b, out=out) is out
    for i in range(5):
        ref = ref_layer_norm_row([float(v) for v in x[i]], g.tolist(), b.tolist())
        np.testing.assert_allclose(out[i], ref, rtol=1e-4, atol=1e-5)


def test_tensor_ops_and_out_buffers():
    a, b, row = rand(4, 3), rand(4, 3), rand(3)
    for fn, ref in ((K.add, a + b), (K.multiply, a * b)):
        out = np.zeros_like(a)
        assert fn(a, b, out=out) is out
        np.testing.assert_array_equal(out, ref)
    out = np.zeros_like(a)
    assert K.broadcast_add(a, row, out=out) is out
    for i in range(4):
        for j in range(3):
            assert out[i, j] == np.float32(a[i, j] + row[j])
    with pytest.raises(ValueError):
        K.broadcast_add(a, rand(4))


def test_kernels_keep_float32():
    x = rand(4, 8)
    g, b = rand(8), rand(8)
    for y in (
        K.gelu(x),
        K.softmax(x),
        K.layer_norm(x, g, b),
        K.matmul(x, x.T),
        K.gelu_grad(x, x),
        K.softmax_grad(K.softmax(x), x),
    ):
        assert y.dtype == np.float32


# ---------------------------------------------------------------- backward kernels
@pytest.mark.parametrize("shapes", [((4, 5), (5, 3)), ((2, 3, 4), (4, 5)), ((2, 3, 4), (2, 4, 2))])
def test_matmul_backward_finite_differences(shapes):
    a = rand(*shapes[0], dtype=np.float64)
    b = rand(*shapes[1], dtype=np.float64)
    w = rand(*np.broadcast_shapes(np.matmul(a, b).shape), dtype=np.float64)

    def loss():
        return float(np.sum(K.matmul(a, b) * w))

    ga, gb = K.matmul_backward(a, b, w)
    np.testing.assert_allclose(ga, numgrad(loss, a), rtol=1e-6, atol=1e-8)
    np.testing.assert_allclose(gb, numgrad(loss, b), rtol=1e-6, atol=1e-8)


def test_matmul_backward_out_buffers():
    a, b, g = rand(8, 16), rand(16, 4), rand(8, 4)
    ga, gb = np.empty_like(a), np.empty_like(b)
    ra, rb = K.matmul_backward(a, b, g, grad_a=ga, grad_b=gb)
    assert ra is ga and rb is gb
    np.testing.assert_allclose(ga, g @ b.T, rtol=1e-5)
    np.testing.assert_allclose(gb, a.T @ g, rtol=1e-5)


def test_gelu_grad_finite_differences():
    x = rand(40, dtype=np.float64, scale=2.5)
    w = rand(40, dtype=np.float64)
    out = np.empty_like(x)
    res = K.gelu_grad(x, w, out=out)
    assert res is out
    np.testing.assert_allclose(
        out, numgrad(lambda: float(np.sum(K.gelu(x) * w)), x), rtol=1e-6, atol=1e-8
    )


def test_softmax_grad_finite_differences():
    x = rand(3, 7, dtype=np.float64)
    w = rand(3, 7, dtype=np.float64)
    y = K.softmax(x)
    out = np.empty_like(x)
    assert K.softmax_grad(y, w, out=out) is out
    np.testing.assert_allclose(
        out, numgrad(lambda: float(np.sum(K.softmax(x) * w)), x), rtol=1e-6, atol=1e-8
    )
    # in-place on grad_out, and along axis 0
    w2 = w.copy()
    K.softmax_grad(y, w2, out=w2)
    np.testing.assert_allclose(w2, out, rtol=1e-12)
    g0 = K.softmax_grad(K.softmax(x, axis=0), w, axis=0)
    np.testing.assert_allclose(
        g0, numgrad(lambda: float(np.sum(K.softmax(x, axis=0) * w)), x), rtol=1e-6, atol=1e-8
    )


def test_layer_norm_backward_finite_differences():
    x = rand(2, 3, 6, dtype=np.float64)
    gamma, beta = rand(6, dtype=np.float64), rand(6, dtype=np.float64)
    w = rand(2, 3, 6, dtype=np.float64)

    def loss():
        return float(np.sum(K.layer_norm(x, gamma, beta) * w))

    gx_buf = np.empty_like(x)
    gx, gg, gb = K.layer_norm_backward(x, gamma, w, grad_x=gx_buf, stats=K.layer_norm_stats(x))
    assert gx is gx_buf
    np.testing.assert_allclose(gx, numgrad(loss, x), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gg, numgrad(loss, gamma), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gb, numgrad(loss, beta), rtol=1e-5, atol=1e-7)
