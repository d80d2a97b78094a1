"""Numeric kernels for SmallMind.

Every kernel works on float32 arrays and accepts an optional ``out=`` buffer so that the
model can run its forward and backward passes out of a :class:`smallmind.pool.BufferPool`
instead of allocating fresh arrays on every step.  Kernels return the array they wrote to
(``out`` when given) so calls can be chained.
"""

from __future__ import annotations

import math

import numpy as np

DTYPE = np.float32

_GELU_C = np.float32(math.sqrt(2.0 / math.pi))
_GELU_A = np.float32(0.044715)


def _out_or_empty(out: np.ndarray | None, shape: tuple[int, ...], dtype) -> np.ndarray:
    """Return ``out`` after validating its shape, or a fresh array if it is ``None``."""
    if out is None:
        return np.empty(shape, dtype=dtype)
    if out.shape != tuple(shape):
        raise ValueError(f"out has shape {out.shape}, expected {tuple(shape)}")
    return out


def _check_matmul(a: np.ndarray, b: np.ndarray) -> None:
    """Reject inputs np.matmul would silently broadcast in surprising ways (1-D, 0-D)."""
    if a.ndim < 2 or b.ndim < 2:
        raise ValueError(f"matmul needs >=2-D operands, got {a.ndim}-D and {b.ndim}-D")
    if a.shape[-1] != b.shape[-2]:
        raise ValueError(f"matmul shape mismatch: {a.shape} @ {b.shape}")


def matmul(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Matrix product ``a @ b`` (batched over leading dims), written into ``out`` if given.

    Kept deliberately tiny: the bisector's regression injector rewrites the body of this
    function textually, so the actual work is one delimited ``np.matmul`` call.
    """
    _check_matmul(a, b)
    return np.matmul(a, b, out=out)


def matmul_backward(
    a: np.ndarray,
    b: np.ndarray,
    grad_out: np.ndarray,
    grad_a: np.ndarray | None = None,
    grad_b: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """Gradients of ``c = a @ b``: ``(grad_out @ b.T, a.T @ grad_out)``.

    Supports three layouts used by the model:
    * 2-D @ 2-D (dense layers on flattened activations),
    * N-D @ 2-D (batched activations times a shared weight; ``grad_b`` is summed over
      the batch dims by flattening them into one GEMM),
    * N-D @ N-D with equal batch dims (attention).
    """
    grad_a = matmul(grad_out, np.swapaxes(b, -1, -2), out=grad_a)
    if b.ndim == 2 and a.ndim > 2:
        k = a.shape[-1]
        a2 = a.reshape(-1, k)
        g2 = grad_out.reshape(-1, grad_out.shape[-1])
        grad_b = matmul(a2.T, g2, out=grad_b)
    elif a.ndim == b.ndim:
        grad_b = matmul(np.swapaxes(a, -1, -2), grad_out, out=grad_b)
    else:
        raise ValueError(f"unsupported matmul_backward layout {a.shape} @ {b.shape}")
    return grad_a, grad_b


def gelu(x: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """GELU, tanh approximation: ``0.5 x (1 + tanh(c (x + 0.044715 x^3)))``.

    Computed fully in place in ``out`` so a 1M-element call allocates no temporaries.
    """
    if out is not None and np.shares_memory(out, x):
        # In-place evaluation would read x after overwriting it; go through a temporary.
        np.copyto(out, gelu(x))
        return out
    out = _out_or_empty(out, x.shape, x.dtype)
    np.multiply(x, x, out=out)  # x^2
    out *= _GELU_A
    out += 1.0
    out *= x  # x + a x^3
    out *= _GELU_C
    np.tanh(out, out=out)
    out += 1.0
    out *= x
    out *= 0.5
    return out


def gelu_grad(x: np.ndarray, grad_out: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Backward of :func:`gelu`: ``grad_out * d gelu(x) / dx``.

    d/dx = 0.5 (1 + t) + 0.5 x (1 - t^2) c (1 + 3 a x^2), with t = tanh(c (x + a x^3)).
    """
    x2 = np.multiply(x, x)
    t = np.multiply(x2, _GELU_A)
    t += 1.0
    t *= x
    t *= _GELU_C
    np.tanh(t, out=t)
    # x2 <- c (1 + 3 a x^2) * 0.5 x (1 - t^2)
    x2 *= 3.0 * _GELU_A
    x2 += 1.0
    x2 *= _GELU_C * np.float32(0.5)
    x2 *= x
    sq = np.multiply(t, t)
    np.subtract(1.0, sq, out=sq)
    x2 *= sq
    t += 1.0
    t *= 0.5
    t += x2  # full derivative
    # Elementwise, so out may alias grad_out or x (x is no longer read).
    res = _out_or_empty(out, x.shape, x.dtype)
    np.multiply(grad_out, t, out=res)
    return res


def softmax(x: np.ndarray, axis: int = -1, out: np.ndarray | None = None) -> np.ndarray:
    """Numerically stable softmax along ``axis`` (the row maximum is subtracted first).

    ``out`` may alias ``x`` (the attention code computes probabilities in place).
    """
    out = _out_or_empty(out, x.shape, x.dtype)
    m = np.max(x, axis=axis, keepdims=True)
    np.subtract(x, m, out=out)
    np.exp(out, out=out)
    s = np.sum(out, axis=axis, keepdims=True)
    out /= s
    return out


def softmax_grad(
    y: np.ndarray, grad_out: np.ndarray, out: np.ndarray | None = None, axis: int = -1
) -> np.ndarray:
    """Backward of softmax given its output ``y``: ``y * (g - sum(g * y))`` along ``axis``."""
    out = _out_or_empty(out, y.shape, y.dtype)
    if axis in (-1, y.ndim - 1):
        # Row dot products without a full-size temporary; also makes out=grad_out safe.
        s = np.einsum("...i,...i->...", grad_out, y)[..., None]
    else:
        s = np.sum(grad_out * y, axis=axis, keepdims=True)
    np.subtract(grad_out, s, out=out)
    out *= y
    return out


def layer_norm_stats(x: np.ndarray, eps: float = 1e-5) -> tuple[np.ndarray, np.ndarray]:
    """Per-row mean and reciprocal std over the last axis (kept dims for broadcasting)."""
    mean = np.mean(x, axis=-1, keepdims=True)
    xc = x - mean
    var = np.mean(np.square(xc, out=xc), axis=-1, keepdims=True)
    var += eps
    rstd = np.sqrt(var, out=var)
    np.divide(1.0, rstd, out=rstd)
    return mean, rstd


def layer_norm(
    x: np.ndarray,
    gamma: np.ndarray,
    beta: np.ndarray,
    eps: float = 1e-5,
    out: np.ndarray | None = None,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """Layer normalisation over the last axis: ``(x - mean) / sqrt(var + eps) * gamma + beta``.

    Pass ``stats=(mean, rstd)`` from :func:`layer_norm_stats` to reuse them in the backward.
    """
    mean, rstd = stats if stats is not None else layer_norm_stats(x, eps)
    out = _out_or_empty(out, x.shape, x.dtype)
    np.subtract(x, mean, out=out)
    out *= rstd
    out *= gamma
    out += beta
    return out


def layer_norm_backward(
    x: np.ndarray,
    gamma: np.ndarray,
    grad_out: np.ndarray,
    eps: float = 1e-5,
    stats: tuple[np.ndarray, np.ndarray] | None = None,
    grad_x: np.ndarray | None = None,
    grad_gamma: np.ndarray | None = None,
    grad_beta: np.ndarray | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Gradients of :func:`layer_norm` w.r.t. ``x``, ``gamma`` and ``beta``.

    dx = rstd * (dxhat - mean(dxhat) - xhat * mean(dxhat * xhat)), with dxhat = g * gamma.
    ``grad_gamma``/``grad_beta`` buffers, when given, are overwritten (not accumulated).
    """
    mean, rstd = stats if stats is not None else layer_norm_stats(x, eps)
    d = x.shape[-1]
    xhat = np.subtract(x, mean)
    xhat *= rstd
    flat_g = grad_out.reshape(-1, d)
    gb = np.sum(flat_g, axis=0, out=grad_beta)
    dxhat = np.multiply(grad_out, gamma)
    tmp = np.multiply(grad_out, xhat)
    gg = np.sum(tmp.reshape(-1, d), axis=0, out=grad_gamma)
    np.multiply(dxhat, xhat, out=tmp)
    m2 = np.mean(tmp, axis=-1, keepdims=True)
    m1 = np.mean(dxhat, axis=-1, keepdims=True)
    gx = _out_or_empty(grad_x, x.shape, x.dtype)
    xhat *= m2
    np.subtract(dxhat, m1, out=gx)
    gx -= xhat
    gx *= rstd
    return gx, gg, gb


def add(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise ``a + b`` (residual connections)."""
    return np.add(a, b, out=out)


def multiply(a: np.ndarray, b: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Elementwise ``a * b``."""
    return np.multiply(a, b, out=out)


def broadcast_add(matrix: np.ndarray, row: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
    """Add a row vector to every row of ``matrix`` (bias add of a dense layer)."""
    if row.ndim != 1 or row.shape[0] != matrix.shape[-1]:
        raise ValueError(f"row of shape {row.shape} does not match matrix {matrix.shape}")
    return np.add(matrix, row, out=out)
