"""Loss, optimiser and the training loop (manual backward through :class:`SmallMind`)."""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from smallmind.data import SyntheticCorpus
from smallmind.model import SmallMind


def cross_entropy(
    logits: np.ndarray, targets: np.ndarray, grad_out: np.ndarray | None = None
) -> tuple[float, np.ndarray]:
    """Mean cross-entropy of ``logits`` (N, V) against int ``targets`` (N,).

    Returns ``(loss, dloss/dlogits)``; the gradient ``(softmax - onehot) / N`` is written into
    ``grad_out`` if given.  Uses log-sum-exp so large logits cannot overflow.
    """
    n = logits.shape[0]
    targets = np.asarray(targets).reshape(-1)
    if targets.shape[0] != n:
        raise ValueError("targets must have one entry per logits row")
    rows = np.arange(n)
    m = np.max(logits, axis=1, keepdims=True)
    g = np.subtract(logits, m, out=grad_out)
    np.exp(g, out=g)
    s = np.sum(g, axis=1, keepdims=True)
    lse = np.log(s) + m
    loss = float(np.mean(lse[:, 0] - logits[rows, targets], dtype=np.float64))
    g /= s
    g[rows, targets] -= 1.0
    g *= g.dtype.type(1.0 / n)
    return loss, g


class AdamW:
    """AdamW (decoupled weight decay) updating the parameter arrays in place.

    Weight decay applies only to matrices (ndim >= 2), the usual GPT recipe; biases and
    layer-norm gains are not decayed.  All state and scratch is allocated once.
    """

    def __init__(
        self,
        params: dict[str, np.ndarray],
        lr: float = 3e-3,
        betas: tuple[float, float] = (0.9, 0.99),
        eps: float = 1e-8,
        weight_decay: float = 0.01,
    ) -> None:
        self.params = params
        self.lr = lr
        self.b1, self.b2 = betas
        self.eps = eps
        self.weight_decay = weight_decay
        self.t = 0
        self.m = {k: np.zeros_like(v) for k, v in params.items()}
        self.v = {k: np.zeros_like(v) for k, v in params.items()}
        self._tmp = {k: np.empty_like(v) for k, v in params.items()}

    def step(self, grads: dict[str, np.ndarray]) -> None:
        self.t += 1
        bc1 = 1.0 - self.b1**self.t
        bc2 = 1.0 - self.b2**self.t
        step_size = self.lr / bc1
        inv_sqrt_bc2 = 1.0 / math.sqrt(bc2)
        for name, p in self.params.items():
            g, m, v, tmp = grads[name], self.m[name], self.v[name], self._tmp[name]
            m *= self.b1
            np.multiply(g, 1.0 - self.b1, out=tmp)
            m += tmp
            v *= self.b2
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - self.b2
            v += tmp
            if self.weight_decay and p.ndim >= 2:
                p *= 1.0 - self.lr * self.weight_decay
            np.sqrt(v, out=tmp)
            tmp *= inv_sqrt_bc2
            tmp += self.eps
            np.divide(m, tmp, out=tmp)
            tmp *= step_size
            p -= tmp


def clip_grad_norm(grads: dict[str, np.ndarray], max_norm: float) -> float:
    """Scale all gradients in place so their global L2 norm is at most ``max_norm``."""
    total = math.sqrt(sum(float(np.vdot(g, g)) for g in grads.values()))
    if max_norm > 0 and total > max_norm:
        scale = max_norm / (total + 1e-6)
        for g in grads.values():
            g *= scale
    return total


def train_step(
    model: SmallMind,
    optimizer: AdamW,
    inputs: np.ndarray,
    targets: np.ndarray,
    max_grad_norm: float = 1.0,
) -> float:
    """One forward/backward/update on a batch; returns the loss before the update."""
    logits, cache = model.forward_train(inputs)
    grad_logits = model.pool.rent(logits.shape, logits.dtype)
    try:
        loss, _ = cross_entropy(logits, targets, grad_out=grad_logits)
        grads = model.backward(cache, grad_logits)
    finally:
        model.release(cache)
        model.pool.give_back(grad_logits)
    if max_grad_norm:
        clip_grad_norm(grads, max_grad_norm)
    optimizer.step(grads)
    return loss


@dataclass
class TrainingReport:
    """Outcome of :func:`train_steps`."""

    losses: list[float]
    steps: int
    batch_size: int
    seq_len: int
    seconds: float
    samples_per_s: float
    tokens_per_s: float
    extra: dict[str, float] = field(default_factory=dict)

    @property
    def initial_loss(self) -> float:
        return self.losses[0]

    @property
    def final_loss(self) -> float:
        return self.losses[-1]


def train_steps(
    model: SmallMind,
    data: SyntheticCorpus | np.ndarray,
    steps: int,
    batch_size: int,
    seq_len: int | None = None,
    optimizer: AdamW | None = None,
    lr: float = 3e-3,
    seed: int = 0,
    max_grad_norm: float = 1.0,
) -> TrainingReport:
    """Run ``steps`` AdamW steps on random windows of ``data``.

    ``data`` is a :class:`SyntheticCorpus` or a 1-D token array.  Pass a persistent
    ``optimizer`` to continue training across calls (otherwise a fresh AdamW is created).
    Throughput counts one sample per sequence of ``seq_len`` tokens.
    """
    if steps < 1:
        raise ValueError("steps must be >= 1")
    seq_len = seq_len or min(32, model.config.context_length)
    if isinstance(data, SyntheticCorpus):
        tokens = data.tokens
    else:
        tokens = np.asarray(data, dtype=np.int64).reshape(-1)
    if tokens.size < seq_len + 1:
        raise ValueError("data shorter than seq_len + 1")
    optimizer = optimizer or AdamW(model.params, lr=lr)
    rng = np.random.default_rng(seed)
    offsets = np.arange(seq_len + 1)
    losses: list[float] = []
    start = time.perf_counter()
    for _ in range(steps):
        starts = rng.integers(0, tokens.size - seq_len, size=batch_size)
        chunk = tokens[starts[:, None] + offsets]
        losses.append(train_step(model, optimizer, chunk[:, :-1], chunk[:, 1:], max_grad_norm))
    seconds = time.perf_counter() - start
    samples = steps * batch_size
    return TrainingReport(
        losses=losses,
        steps=steps,
        batch_size=batch_size,
        seq_len=seq_len,
        seconds=seconds,
        samples_per_s=samples / seconds,
        tokens_per_s=samples * seq_len / seconds,
    )
