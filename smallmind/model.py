"""A decoder-only transformer (GPT-2 style, pre-layer-norm) written against numpy.

Architecture: token + learned position embeddings, ``n_layers`` blocks of
``x += attn(ln1(x)); x += mlp(ln2(x))`` with causal multi-head self-attention and a GELU MLP
of width ``4 * d_model``, a final layer norm and an untied output head (with bias).

Named configurations (``CONFIGS``), sized so that the parameter counts hit the benchmark
targets within 3%:

=========  =====  =======  =======  ======  =====  ==========================
name       vocab  context  d_model  layers  heads  parameters
=========  =====  =======  =======  ======  =====  ==========================
tiny       256    32       64       2       4      135,168 (tests; MLP hidden 256)
small      256    64       128      2       4      470,784 (target 470K)
medium     512    128      256      4       8      3,454,976 (target 3.45M)
=========  =====  =======  =======  ======  =====  ==========================

Per block there are ``12 d^2 + 13 d`` parameters (qkv 3d^2+3d, proj d^2+d, MLP 8d^2+5d,
two layer norms 4d); embeddings add ``(vocab + context) d``, the final norm ``2 d`` and the
head ``(d + 1) vocab``.

Activations are kept flattened as ``(batch * seq, d_model)`` so every dense layer is a single
GEMM, and all intermediates are rented from the model's :class:`BufferPool`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from smallmind import kernels as K
from smallmind.pool import BufferPool


@dataclass(frozen=True)
class ModelConfig:
    """Hyper-parameters of a :class:`SmallMind` model."""

    vocab_size: int
    context_length: int
    d_model: int
    n_layers: int
    n_heads: int
    mlp_ratio: int = 4
    name: str = "custom"

    def __post_init__(self) -> None:
        if self.d_model % self.n_heads:
            raise ValueError("d_model must be divisible by n_heads")

    @property
    def head_dim(self) -> int:
        return self.d_model // self.n_heads

    @property
    def mlp_hidden(self) -> int:
        return self.mlp_ratio * self.d_model

    def num_parameters(self) -> int:
        """Closed-form parameter count (matches :meth:`SmallMind.num_parameters`)."""
        d, v = self.d_model, self.vocab_size
        h = self.mlp_hidden
        block = 4 * d + (3 * d * d + 3 * d) + (d * d + d) + (d * h + h) + (h * d + d)
        return (v + self.context_length) * d + self.n_layers * block + 2 * d + (d + 1) * v


CONFIGS: dict[str, ModelConfig] = {
    "tiny": ModelConfig(256, 32, 64, 2, 4, name="tiny"),
    "small": ModelConfig(256, 64, 128, 2, 4, name="small"),
    "medium": ModelConfig(512, 128, 256, 4, 8, name="medium"),
}

_BLOCK_PARAMS = (
    "ln1_g", "ln1_b", "w_qkv", "b_qkv", "w_proj", "b_proj",
    "ln2_g", "ln2_b", "w_fc", "b_fc", "w_out", "b_out",
)  # fmt: skip


@dataclass
class _LayerCache:
    x: np.ndarray  # block input (residual stream), (N, d)
    st1: tuple[np.ndarray, np.ndarray]
    h1: np.ndarray  # ln1(x)
    qkv: np.ndarray  # (N, 3d)
    p: np.ndarray  # attention probabilities (B, H, T, T)
    y: np.ndarray  # merged attention output (N, d)
    x1: np.ndarray  # x + attn
    st2: tuple[np.ndarray, np.ndarray]
    h2: np.ndarray  # ln2(x1)
    f: np.ndarray  # pre-GELU (N, 4d)
    g: np.ndarray  # post-GELU


@dataclass
class ForwardCache:
    """Activations saved by :meth:`SmallMind.forward_train` for the backward pass."""

    tokens: np.ndarray
    layers: list[_LayerCache]
    x_final: np.ndarray
    st_final: tuple[np.ndarray, np.ndarray]
    h_final: np.ndarray
    logits: np.ndarray
    rented: list[np.ndarray] = field(default_factory=list)


class SmallMind:
    """The transformer.  Parameters live in ``self.params`` (name -> array); gradients from
    :meth:`backward` in ``self.grads`` with the same keys."""

    def __init__(self, config: ModelConfig, params: dict[str, np.ndarray], dtype=np.float32):
        self.config = config
        self.dtype = np.dtype(dtype)
        self.params = params
        self.grads: dict[str, np.ndarray] = {}
        self.pool = BufferPool()
        ctx = config.context_length
        mask = np.zeros((ctx, ctx), dtype=self.dtype)
        mask[np.triu_indices(ctx, k=1)] = -np.inf
        self._mask = mask
        self._scale = self.dtype.type(1.0 / math.sqrt(config.head_dim))

    # ------------------------------------------------------------------ helpers
    def num_parameters(self) -> int:
        return int(sum(p.size for p in self.params.values()))

    def _p(self, layer: int, name: str) -> np.ndarray:
        return self.params[f"h{layer}.{name}"]

    def _g(self, layer: int, name: str) -> np.ndarray:
        return self.grads[f"h{layer}.{name}"]

    def _heads(self, qkv: np.ndarray, b: int, t: int):
        """Views q, k, v of shape (B, H, T, hd) into a (B*T, 3d) qkv buffer (no copies)."""
        c = self.config
        v5 = qkv.reshape(b, t, 3, c.n_heads, c.head_dim)
        return tuple(v5[:, :, i].transpose(0, 2, 1, 3) for i in range(3))

    def _check_tokens(self, tokens) -> np.ndarray:
        tokens = np.asarray(tokens)
        if tokens.ndim != 2:
            raise ValueError(f"tokens must be (batch, seq), got shape {tokens.shape}")
        if not np.issubdtype(tokens.dtype, np.integer):
            raise TypeError("tokens must be integers")
        if tokens.shape[1] > self.config.context_length or tokens.shape[1] == 0:
            raise ValueError(f"sequence length must be 1..{self.config.context_length}")
        if tokens.size and (tokens.min() < 0 or tokens.max() >= self.config.vocab_size):
            raise ValueError("token id out of range")
        return tokens

    # ------------------------------------------------------------------ forward
    def _forward(self, tokens: np.ndarray, keep: bool, last_only: bool = False):
        c = self.config
        b, t = tokens.shape
        n, d, dt = b * t, c.d_model, self.dtype
        rented: list[np.ndarray] = []

        def rent(shape) -> np.ndarray:
            arr = self.pool.rent(shape, dt)
            rented.append(arr)
            return arr

        x = rent((n, d))
        np.take(self.params["wte"], tokens.reshape(-1), axis=0, out=x)
        x.reshape(b, t, d)[...] += self.params["wpe"][:t]
        mask = self._mask[:t, :t]
        layers: list[_LayerCache] = []
        for i in range(c.n_layers):
            st1 = K.layer_norm_stats(x)
            h1 = K.layer_norm(
                x, self._p(i, "ln1_g"), self._p(i, "ln1_b"), stats=st1, out=rent((n, d))
            )
            qkv = K.matmul(h1, self._p(i, "w_qkv"), out=rent((n, 3 * d)))
            K.broadcast_add(qkv, self._p(i, "b_qkv"), out=qkv)
            q, k, v = self._heads(qkv, b, t)
            p = K.matmul(q, k.swapaxes(-1, -2), out=rent((b, c.n_heads, t, t)))
            p *= self._scale
            p += mask
            K.softmax(p, out=p)
            y = rent((n, d))
            K.matmul(p, v, out=y.reshape(b, t, c.n_heads, c.head_dim).transpose(0, 2, 1, 3))
            x1 = K.matmul(y, self._p(i, "w_proj"), out=rent((n, d)))
            K.broadcast_add(x1, self._p(i, "b_proj"), out=x1)
            K.add(x1, x, out=x1)
            st2 = K.layer_norm_stats(x1)
            h2 = K.layer_norm(
                x1, self._p(i, "ln2_g"), self._p(i, "ln2_b"), stats=st2, out=rent((n, d))
            )
            f = K.matmul(h2, self._p(i, "w_fc"), out=rent((n, c.mlp_hidden)))
            K.broadcast_add(f, self._p(i, "b_fc"), out=f)
            g = K.gelu(f, out=rent((n, c.mlp_hidden)))
            x2 = K.matmul(g, self._p(i, "w_out"), out=rent((n, d)))
            K.broadcast_add(x2, self._p(i, "b_out"), out=x2)
            K.add(x2, x1, out=x2)
            if keep:
                layers.append(_LayerCache(x, st1, h1, qkv, p, y, x1, st2, h2, f, g))
            x = x2
        if last_only:
            x = x.reshape(b, t, d)[:, -1, :]
        st = K.layer_norm_stats(x)
        hf = K.layer_norm(
            x, self.params["lnf_g"], self.params["lnf_b"], stats=st, out=rent(x.shape)
        )
        # Logits are handed to the caller, so they are only pooled for training.
        logits = K.matmul(
            hf, self.params["w_head"], out=rent((hf.shape[0], c.vocab_size)) if keep else None
        )
        K.broadcast_add(logits, self.params["b_head"], out=logits)
        if not keep:
            self.pool.give_back_all(rented)
            return logits, None
        return logits, ForwardCache(tokens, layers, x, st, hf, logits, rented)

    def forward(self, tokens) -> np.ndarray:
        """Inference: logits of shape (B, T, vocab) for int token ids of shape (B, T)."""
        tokens = self._check_tokens(tokens)
        logits, _ = self._forward(tokens, keep=False)
        return logits.reshape(tokens.shape[0], tokens.shape[1], -1)

    __call__ = forward

    def next_token_logits(self, tokens) -> np.ndarray:
        """Logits of the last position only, (B, vocab): skips the head for the rest."""
        tokens = self._check_tokens(tokens)
        logits, _ = self._forward(tokens, keep=False, last_only=True)
        return logits

    def generate(self, prompt_tokens, k: int) -> np.ndarray:
        """Greedily generate ``k`` tokens after ``prompt_tokens`` ((T,) or (B, T)).

        Returns only the new tokens, shape (k,) or (B, k).  The context is cropped to the
        last ``context_length`` tokens (no KV cache: each step re-runs the forward pass).
        """
        prompt = np.asarray(prompt_tokens, dtype=np.int64)
        single = prompt.ndim == 1
        seq = prompt[None, :] if single else prompt
        ctx = self.config.context_length
        new = np.empty((seq.shape[0], k), dtype=np.int64)
        for step in range(k):
            logits = self.next_token_logits(seq[:, -ctx:])
            new[:, step] = np.argmax(logits, axis=-1)
            seq = np.concatenate([seq[:, -(ctx - 1) :], new[:, step : step + 1]], axis=1)
        return new[0] if single else new

    # ------------------------------------------------------------------ training
    def forward_train(self, tokens) -> tuple[np.ndarray, ForwardCache]:
        """Forward pass keeping activations; returns flattened logits (B*T, vocab).

        The logits and cache are pool buffers: call :meth:`release` once done with them.
        """
        tokens = self._check_tokens(tokens)
        return self._forward(tokens, keep=True)

    def release(self, cache: ForwardCache) -> None:
        """Give the activations of ``cache`` back to the pool."""
        self.pool.give_back_all(cache.rented)
        cache.rented = []

    def zero_grads(self) -> dict[str, np.ndarray]:
        """Allocate (once) the gradient buffers; contents are overwritten by backward."""
        if not self.grads:
            self.grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        return self.grads

    def backward(self, cache: ForwardCache, grad_logits: np.ndarray) -> dict[str, np.ndarray]:
        """Back-propagate ``grad_logits`` (B*T, vocab) through the whole model.

        Fills and returns ``self.grads`` (overwritten, not accumulated).
        """
        c = self.config
        grads = self.zero_grads()
        b, t = cache.tokens.shape
        n, d, dt = b * t, c.d_model, self.dtype
        pool = self.pool
        tmp: list[np.ndarray] = []

        def rent(shape) -> np.ndarray:
            arr = pool.rent(shape, dt)
            tmp.append(arr)
            return arr

        dh = rent((n, d))
        K.matmul_backward(
            cache.h_final, self.params["w_head"], grad_logits, grad_a=dh, grad_b=grads["w_head"]
        )
        np.sum(grad_logits, axis=0, out=grads["b_head"])
        dx = rent((n, d))
        K.layer_norm_backward(
            cache.x_final,
            self.params["lnf_g"],
            dh,
            stats=cache.st_final,
            grad_x=dx,
            grad_gamma=grads["lnf_g"],
            grad_beta=grads["lnf_b"],
        )
        for i in reversed(range(c.n_layers)):
            lc = cache.layers[i]
            # MLP: x2 = x1 + gelu(ln2(x1) @ w_fc + b_fc) @ w_out + b_out
            dg = pool.rent((n, c.mlp_hidden), dt)
            K.matmul_backward(lc.g, self._p(i, "w_out"), dx, grad_a=dg, grad_b=self._g(i, "w_out"))
            np.sum(dx, axis=0, out=self._g(i, "b_out"))
            K.gelu_grad(lc.f, dg, out=dg)
            K.matmul_backward(lc.h2, self._p(i, "w_fc"), dg, grad_a=dh, grad_b=self._g(i, "w_fc"))
            np.sum(dg, axis=0, out=self._g(i, "b_fc"))
            dx1 = pool.rent((n, d), dt)
            K.layer_norm_backward(
                lc.x1,
                self._p(i, "ln2_g"),
                dh,
                stats=lc.st2,
                grad_x=dx1,
                grad_gamma=self._g(i, "ln2_g"),
                grad_beta=self._g(i, "ln2_b"),
            )
            dx1 += dx
            # Attention: x1 = x + merge(softmax(q k^T * s + mask) v) @ w_proj + b_proj
            dy = dh
            K.matmul_backward(
                lc.y, self._p(i, "w_proj"), dx1, grad_a=dy, grad_b=self._g(i, "w_proj")
            )
            np.sum(dx1, axis=0, out=self._g(i, "b_proj"))
            dyh = dy.reshape(b, t, c.n_heads, c.head_dim).transpose(0, 2, 1, 3)
            q, k, v = self._heads(lc.qkv, b, t)
            dqkv = pool.rent((n, 3 * d), dt)
            dq, dk, dv = self._heads(dqkv, b, t)
            dp = pool.rent(lc.p.shape, dt)
            K.matmul_backward(lc.p, v, dyh, grad_a=dp, grad_b=dv)
            K.softmax_grad(lc.p, dp, out=dp)
            dp *= self._scale
            K.matmul_backward(q, k.swapaxes(-1, -2), dp, grad_a=dq, grad_b=dk.swapaxes(-1, -2))
            K.matmul_backward(
                lc.h1, self._p(i, "w_qkv"), dqkv, grad_a=dh, grad_b=self._g(i, "w_qkv")
            )
            np.sum(dqkv, axis=0, out=self._g(i, "b_qkv"))
            K.layer_norm_backward(
                lc.x,
                self._p(i, "ln1_g"),
                dh,
                stats=lc.st1,
                grad_x=dx,
                grad_gamma=self._g(i, "ln1_g"),
                grad_beta=self._g(i, "ln1_b"),
            )
            dx += dx1
            pool.give_back_all((dg, dx1, dqkv, dp))
        gw = grads["wte"]
        gw.fill(0)
        np.add.at(gw, cache.tokens.reshape(-1), dx)
        gp = grads["wpe"]
        gp.fill(0)
        np.sum(dx.reshape(b, t, d), axis=0, out=gp[:t])
        pool.give_back_all(tmp)
        return grads


def _init_params(config: ModelConfig, seed: int, dtype) -> dict[str, np.ndarray]:
    """GPT-2 style init: N(0, 0.02) weights, residual projections scaled by 1/sqrt(2L),
    zero biases, unit layer-norm gains."""
    rng = np.random.default_rng(seed)
    d, h, v = config.d_model, config.mlp_hidden, config.vocab_size
    std = 0.02
    proj_std = std / math.sqrt(2 * config.n_layers)

    def normal(shape, s=std):
        return (rng.standard_normal(shape, dtype=np.float32) * np.float32(s)).astype(dtype)

    params: dict[str, np.ndarray] = {
        "wte": normal((v, d)),
        "wpe": normal((config.context_length, d), 0.01),
    }
    for i in range(config.n_layers):
        shapes = {
            "ln1_g": None, "ln1_b": (d,), "w_qkv": (d, 3 * d), "b_qkv": (3 * d,),
            "w_proj": (d, d), "b_proj": (d,), "ln2_g": None, "ln2_b": (d,),
            "w_fc": (d, h), "b_fc": (h,), "w_out": (h, d), "b_out": (d,),
        }  # fmt: skip
        for name in _BLOCK_PARAMS:
            key = f"h{i}.{name}"
            if name.endswith("_g"):
                params[key] = np.ones(d, dtype=dtype)
            elif name.startswith("b_") or name.endswith("_b"):
                params[key] = np.zeros(shapes[name], dtype=dtype)
            else:
                s = proj_std if name in ("w_proj", "w_out") else std
                params[key] = normal(shapes[name], s)
    params["lnf_g"] = np.ones(d, dtype=dtype)
    params["lnf_b"] = np.zeros(d, dtype=dtype)
    params["w_head"] = normal((d, v))
    params["b_head"] = np.zeros(v, dtype=dtype)
    return params


def create_model(
    name_or_config: str | ModelConfig = "small", seed: int = 0, dtype=np.float32
) -> SmallMind:
    """Build a deterministically initialised model from a ``CONFIGS`` name or a config.

    ``dtype=np.float64`` exists for gradient checking; everything else uses float32.
    """
    if isinstance(name_or_config, str):
        try:
            config = CONFIGS[name_or_config]
        except KeyError:
            known = sorted(CONFIGS)
            raise ValueError(f"unknown config {name_or_config!r}; known: {known}") from None
    else:
        config = name_or_config
    return SmallMind(config, _init_params(config, seed, dtype), dtype=dtype)
