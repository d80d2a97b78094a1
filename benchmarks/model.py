"""Model-level timings: creation, inference, training throughput and generation speed.

Sizes are kept moderate because the bisector runs this suite once per bisection step:
small inference is batch 4 x 64 tokens, medium batch 2 x 64 tokens.
"""

import time

import numpy as np

from smallmind import AdamW, SyntheticCorpus, create_model, train_steps


class ModelCreation:
    """Deterministic parameter initialisation."""

    def time_create_small(self):
        create_model("small", seed=0)

    def time_create_medium(self):
        create_model("medium", seed=0)


class Inference:
    """Full-sequence forward pass (logits for every position)."""

    def setup(self):
        rng = np.random.default_rng(0)
        self.small = create_model("small", seed=0)
        self.medium = create_model("medium", seed=0)
        self.tokens_small = rng.integers(0, self.small.config.vocab_size, (4, 64))
        self.tokens_medium = rng.integers(0, self.medium.config.vocab_size, (2, 64))
        # Warm the buffer pools so steady-state cost is measured.
        self.small.forward(self.tokens_small)
        self.medium.forward(self.tokens_medium)

    def time_inference_small(self):
        self.small.forward(self.tokens_small)

    def time_inference_medium(self):
        self.medium.forward(self.tokens_medium)


class Training:
    """AdamW training throughput of the small model, batch 32 x 32 tokens."""

    unit = "samples/s"
    timeout = 120

    def setup(self):
        self.model = create_model("small", seed=0)
        self.corpus = SyntheticCorpus(self.model.config.vocab_size, seed=0)
        self.opt = AdamW(self.model.params)
        train_steps(self.model, self.corpus, 1, 32, seq_len=32, optimizer=self.opt)  # warm-up

    def track_training_throughput(self):
        report = train_steps(self.model, self.corpus, 8, 32, seq_len=32, optimizer=self.opt)
        return report.samples_per_s


class Generation:
    """Greedy generation with the small model: 16-token prompt, 32 new tokens."""

    unit = "tokens/s"

    def setup(self):
        self.model = create_model("small", seed=0)
        self.prompt = np.arange(16) % self.model.config.vocab_size
        self.model.generate(self.prompt, 4)  # warm-up

    def track_generation_tokens_per_s(self):
        k = 32
        start = time.perf_counter()
        self.model.generate(self.prompt, k)
        return k / (time.perf_counter() - start)
