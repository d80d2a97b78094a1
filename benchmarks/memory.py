"""Memory benchmarks.

``peakmem_*`` report the process' peak RSS (asv measures it).  ``track_*_alloc_bytes`` use
tracemalloc and report the *peak extra bytes traced* while the workload runs, on top of
what was live before it started: a deterministic number that rises when a kernel starts
allocating temporaries or a buffer stops being reused.
"""

import tracemalloc

import numpy as np

from smallmind import AdamW, ModelConfig, SyntheticCorpus, create_model, train_steps
from smallmind import kernels as K

# "hidden 256": d_model 256 (the medium model's width) but a single layer and short
# sequences so that 50 steps stay around a second.
HIDDEN256 = ModelConfig(
    vocab_size=256, context_length=32, d_model=256, n_layers=1, n_heads=4, name="hidden256"
)


def _peak_alloc(fn) -> int:
    started = not tracemalloc.is_tracing()
    if started:
        tracemalloc.start()
    try:
        base = tracemalloc.get_traced_memory()[0]
        tracemalloc.reset_peak()
        fn()
        return tracemalloc.get_traced_memory()[1] - base
    finally:
        if started:
            tracemalloc.stop()


class Memory:
    timeout = 120

    def setup(self):
        rng = np.random.default_rng(0)
        self.a = rng.standard_normal((128, 256), dtype=np.float32)
        self.b = rng.standard_normal((256, 128), dtype=np.float32)
        self.g = rng.standard_normal((128, 128), dtype=np.float32)

    def peakmem_medium_inference(self):
        model = create_model("medium", seed=0)
        tokens = np.random.default_rng(0).integers(0, model.config.vocab_size, (2, 64))
        model.forward(tokens)

    def peakmem_training_step(self):
        model = create_model("small", seed=0)
        corpus = SyntheticCorpus(model.config.vocab_size, seed=0)
        train_steps(model, corpus, 1, 32, seq_len=32)

    def track_matmul_backward_alloc_bytes(self):
        def run():
            for _ in range(100):
                ga, gb = K.matmul_backward(self.a, self.b, self.g)
                del ga, gb

        return _peak_alloc(run)

    track_matmul_backward_alloc_bytes.unit = "bytes"

    def track_training_alloc_bytes(self):
        model = create_model(HIDDEN256, seed=0)
        corpus = SyntheticCorpus(HIDDEN256.vocab_size, seed=0)
        opt = AdamW(model.params)
        train_steps(model, corpus, 1, 32, seq_len=16, optimizer=opt)  # fill the pool
        return _peak_alloc(lambda: train_steps(model, corpus, 50, 32, seq_len=16, optimizer=opt))

    track_training_alloc_bytes.unit = "bytes"
