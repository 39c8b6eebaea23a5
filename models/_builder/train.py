"""Plain-numpy softmax classifiers (linear and one-hidden-layer MLP) trained with full-batch Adam."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from .common import Floats, Ints

Params = dict[str, Floats]
GradFn = Callable[[Params, Floats, Floats], Params]
Layer = tuple[Floats, Floats]


@dataclass(frozen=True)
class Schedule:
    """Optimiser settings; the seed drives both initialisation and batch order."""

    epochs: int
    batch: int
    lr: float
    seed: int


def softmax(logits: Floats) -> Floats:
    shifted = logits - logits.max(axis=1, keepdims=True)  # avoid overflow in exp
    exp: Floats = np.exp(shifted)
    total: Floats = exp.sum(axis=1, keepdims=True)
    return (exp / total).astype(np.float32)


def one_hot(y: Ints, n_classes: int) -> Floats:
    return np.eye(n_classes, dtype=np.float32)[y]


def _batches(n: int, batch: int, epochs: int, rng: np.random.Generator) -> list[Ints]:
    """Seeded shuffles: mini-batches give many cheap updates, the fixed RNG keeps them reproducible."""
    order = np.concatenate([rng.permutation(n) for _ in range(epochs)])
    return [order[i : i + batch] for i in range(0, len(order), batch)]


def adam(params: Params, grad_fn: GradFn, x: Floats, targets: Floats, schedule: Schedule) -> Params:
    """Textbook mini-batch Adam."""
    beta1, beta2, eps = 0.9, 0.999, 1e-8
    m = {k: np.zeros_like(v) for k, v in params.items()}
    v = {k: np.zeros_like(p) for k, p in params.items()}
    params = {k: p.copy() for k, p in params.items()}
    lr = schedule.lr
    rng = np.random.default_rng(schedule.seed)
    for t, idx in enumerate(_batches(len(x), schedule.batch, schedule.epochs, rng), start=1):
        grads = grad_fn(params, x[idx], targets[idx])
        for k, g in grads.items():
            m[k] = beta1 * m[k] + (1 - beta1) * g
            v[k] = beta2 * v[k] + (1 - beta2) * g * g
            m_hat = m[k] / (1 - beta1**t)
            v_hat = v[k] / (1 - beta2**t)
            params[k] = (params[k] - lr * m_hat / (np.sqrt(v_hat) + eps)).astype(np.float32)
    return params


def _linear_grads(p: Params, x: Floats, targets: Floats) -> Params:
    delta = (softmax(x @ p["w"] + p["b"]) - targets) / len(x)  # d(mean cross-entropy)/d(logits)
    return {"w": x.T @ delta, "b": delta.sum(axis=0)}


def _mlp_grads(l2: float) -> GradFn:
    def grads(p: Params, x: Floats, targets: Floats) -> Params:
        pre = x @ p["w1"] + p["b1"]
        hidden = np.maximum(pre, 0)
        delta = (softmax(hidden @ p["w2"] + p["b2"]) - targets) / len(x)
        d_hidden = (delta @ p["w2"].T) * (pre > 0)
        return {
            "w1": x.T @ d_hidden + l2 * p["w1"],
            "b1": d_hidden.sum(axis=0),
            "w2": hidden.T @ delta + l2 * p["w2"],
            "b2": delta.sum(axis=0),
        }

    return grads


def fit_linear(x: Floats, y: Ints, n_classes: int, schedule: Schedule) -> list[Layer]:
    """Multinomial logistic regression; with two classes this is ordinary logistic regression."""
    init = {"w": np.zeros((x.shape[1], n_classes), np.float32), "b": np.zeros(n_classes, np.float32)}
    p = adam(init, _linear_grads, x, one_hot(y, n_classes), schedule)
    return [(p["w"], p["b"])]


def fit_mlp(x: Floats, y: Ints, n_classes: int, hidden: int, schedule: Schedule) -> list[Layer]:
    """x -> Relu(x W1 + b1) W2 + b2, He-initialised from a fixed seed."""
    rng = np.random.default_rng(schedule.seed + 1)  # distinct stream from the batch shuffles
    init = {
        "w1": (rng.standard_normal((x.shape[1], hidden)) * np.sqrt(2.0 / x.shape[1])).astype(np.float32),
        "b1": np.zeros(hidden, np.float32),
        "w2": (rng.standard_normal((hidden, n_classes)) * np.sqrt(1.0 / hidden)).astype(np.float32),
        "b2": np.zeros(n_classes, np.float32),
    }
    p = adam(init, _mlp_grads(l2=0.0), x, one_hot(y, n_classes), schedule)
    return [(p["w1"], p["b1"]), (p["w2"], p["b2"])]
