"""Kernel-level timings.  Inputs are built in ``setup`` so only the kernel is timed."""

import numpy as np

from smallmind import kernels as K


def _rand(rng, *shape):
    return rng.standard_normal(shape, dtype=np.float32)


class MatMul:
    """Square n x n float32 matrix product into a preallocated output."""

    params = [64, 128, 256, 512]
    param_names = ["n"]

    def setup(self, n):
        rng = np.random.default_rng(0)
        self.a, self.b = _rand(rng, n, n), _rand(rng, n, n)
        self.out = np.empty((n, n), dtype=np.float32)

    def time_matmul(self, n):
        K.matmul(self.a, self.b, out=self.out)


class MatMulBackward:
    """Both gradients of (128 x 256) @ (256 x 128)."""

    def setup(self):
        rng = np.random.default_rng(0)
        self.a, self.b = _rand(rng, 128, 256), _rand(rng, 256, 128)
        self.g = _rand(rng, 128, 128)
        self.ga = np.empty_like(self.a)
        self.gb = np.empty_like(self.b)

    def time_matmul_backward(self):
        K.matmul_backward(self.a, self.b, self.g, grad_a=self.ga, grad_b=self.gb)


class Gelu:
    """tanh-GELU over 1,000,000 elements."""

    def setup(self):
        self.x = _rand(np.random.default_rng(0), 1_000_000)
        self.out = np.empty_like(self.x)

    def time_gelu(self):
        K.gelu(self.x, out=self.out)


class Softmax:
    """Row softmax over 64 rows of length n."""

    params = [256, 512, 1024, 2048]
    param_names = ["n"]

    def setup(self, n):
        self.x = _rand(np.random.default_rng(0), 64, n)
        self.out = np.empty_like(self.x)

    def time_softmax(self, n):
        K.softmax(self.x, out=self.out)


class TensorOps:
    """Elementwise ops on 512 x 512 float32 (residual adds, scaling, bias add)."""

    def setup(self):
        rng = np.random.default_rng(0)
        self.a, self.b = _rand(rng, 512, 512), _rand(rng, 512, 512)
        self.row = _rand(rng, 512)
        self.out = np.empty_like(self.a)

    def time_add(self):
        K.add(self.a, self.b, out=self.out)

    def time_multiply(self):
        K.multiply(self.a, self.b, out=self.out)

    def time_broadcast(self):
        K.broadcast_add(self.a, self.row, out=self.out)
