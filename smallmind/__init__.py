"""SmallMind: a small decoder-only transformer (inference + training) in pure numpy.

It is the benchmark subject of the smbisect performance-regression bisector, so it is
written to be correct, reasonably fast and allocation-frugal (see ``smallmind.pool``).
"""

from smallmind.data import SyntheticCorpus
from smallmind.kernels import (
    add,
    broadcast_add,
    gelu,
    gelu_grad,
    layer_norm,
    layer_norm_backward,
    layer_norm_stats,
    matmul,
    matmul_backward,
    multiply,
    softmax,
    softmax_grad,
)
from smallmind.model import CONFIGS, ForwardCache, ModelConfig, SmallMind, create_model
from smallmind.pool import BufferPool
from smallmind.training import (
    AdamW,
    TrainingReport,
    clip_grad_norm,
    cross_entropy,
    train_step,
    train_steps,
)

__version__ = "0.1.0"

__all__ = [
    "CONFIGS",
    "AdamW",
    "BufferPool",
    "ForwardCache",
    "ModelConfig",
    "SmallMind",
    "SyntheticCorpus",
    "TrainingReport",
    "__version__",
    "add",
    "broadcast_add",
    "clip_grad_norm",
    "create_model",
    "cross_entropy",
    "gelu",
    "gelu_grad",
    "layer_norm",
    "layer_norm_backward",
    "layer_norm_stats",
    "matmul",
    "matmul_backward",
    "multiply",
    "softmax",
    "softmax_grad",
    "train_step",
    "train_steps",
]
