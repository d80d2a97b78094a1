"""Loss, optimiser and the training loop."""

from __future__ import annotations

import math

import numpy as np

from smallmind import AdamW, SyntheticCorpus, TrainingReport, create_model, cross_entropy
from smallmind.training import clip_grad_norm


def test_cross_entropy_reference():
    rng = np.random.default_rng(0)
    logits = rng.standard_normal((5, 7)).astype(np.float32) * 3
    targets = rng.integers(0, 7, 5)
    buf = np.empty_like(logits)
    loss, g = cross_entropy(logits, targets, grad_out=buf)
    assert g is buf
    ref = 0.0
    for i in range(5):
        row = [float(v) for v in logits[i]]
        ref -= row[targets[i]] - math.log(sum(math.exp(v) for v in row))
    assert math.isclose(loss, ref / 5, rel_tol=1e-5)
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    p[np.arange(5), targets] -= 1
    np.testing.assert_allclose(g, p / 5, rtol=1e-5, atol=1e-7)
    big = np.array([[1000.0, 0.0]], dtype=np.float32)
    assert math.isfinite(cross_entropy(big, np.array([1]))[0])


def test_corpus_is_deterministic():
    a, b = SyntheticCorpus(50, seed=1), SyntheticCorpus(50, seed=1)
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, SyntheticCorpus(50, seed=2).tokens)
    x, y = a.batch(4, 9, rng=np.random.default_rng(0))
    assert x.shape == y.shape == (4, 9)
    np.testing.assert_array_equal(x[:, 1:], y[:, :-1])
    assert a.tokens.max() < 50


def test_adamw_first_step_is_lr_sized():
    p = {"w": np.ones((2, 2), np.float32), "b": np.zeros(2, np.float32)}
    opt = AdamW(p, lr=0.1, weight_decay=0.0)
    opt.step({"w": np.full((2, 2), 5.0, np.float32), "b": np.array([-1.0, 2.0], np.float32)})
    np.testing.assert_allclose(p["w"], 0.9, rtol=1e-5)
    np.testing.assert_allclose(p["b"], [0.1, -0.1], rtol=1e-5)


def test_clip_grad_norm():
    g = {"a": np.array([3.0, 0.0], np.float32), "b": np.array([4.0], np.float32)}
    assert math.isclose(clip_grad_norm(g, 1.0), 5.0)
    total = math.sqrt(sum(float(np.vdot(v, v)) for v in g.values()))
    assert math.isclose(total, 1.0, rel_tol=1e-5)


def test_loss_decreases_on_synthetic_corpus():
    model = create_model("small", seed=0)
    corpus = SyntheticCorpus(model.config.vocab_size, seed=0)
    report = train_steps_checked(model, corpus)
    assert report.initial_loss > 5.0  # ~log(256) at init
    assert report.final_loss < 0.5 * report.initial_loss
    assert np.mean(report.losses[-5:]) < np.mean(report.losses[:5])


def train_steps_checked(model, corpus) -> TrainingReport:
    from smallmind import train_steps

    report = train_steps(model, corpus, steps=40, batch_size=16, seq_len=32, seed=0)
    assert isinstance(report, TrainingReport)
    assert len(report.losses) == 40 and report.steps == 40
    assert report.samples_per_s > 0 and report.tokens_per_s == report.samples_per_s * 32
    assert all(math.isfinite(v) for v in report.losses)
    return report


def test_training_is_deterministic():
    from smallmind import train_steps

    losses = []
    for _ in range(2):
        model = create_model("tiny", seed=7)
        corpus = SyntheticCorpus(256, seed=3, length=3000)
        losses.append(train_steps(model, corpus, steps=3, batch_size=4, seq_len=8, seed=1).losses)
    assert losses[0] == losses[1]
