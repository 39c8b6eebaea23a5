"""Fraud scoring: synthetic card transactions, logistic regression (v1) and a small MLP (v2)."""

from __future__ import annotations

import numpy as np
from onnx import helper

from .common import BuiltModel, Floats, Ints, Split, classifier_head, const, float_input, ort_accuracy, serialize, split
from .train import Layer, Schedule, fit_linear, fit_mlp

SEED = 1234
N_ROWS = 25_000
N_TEST = 5_000
NOISE = 0.4
RISK_THRESHOLD = 1.5  # with the pattern frequencies below this labels ~5% of rows as fraud
CLASSES = ("legitimate", "fraud")

# Column order of the `features` input; README and clients rely on it.
FEATURES: tuple[tuple[str, str], ...] = (
    ("amount", "transaction amount, USD"),
    ("hour", "local hour of day, 0-23"),
    ("distance_km", "distance from the cardholder's home, km"),
    ("merchant_risk", "merchant risk score, 0-1"),
    ("txn_count_24h", "card transactions in the last 24 h"),
    ("account_age_days", "age of the account, days"),
    ("is_online", "1 if card-not-present e-commerce, else 0"),
    ("is_foreign", "1 if the merchant is abroad, else 0"),
    ("card_present", "1 if the chip/PIN was read, else 0"),
    ("avg_amount_30d", "cardholder's mean amount over 30 days, USD"),
    ("minutes_since_last", "minutes since the previous transaction"),
    ("device_trust", "device trust score, 0-1"),
)


def _raw_features(rng: np.random.Generator, n: int) -> Floats:
    """Plausible, independently drawn marginals on very different scales (hence the baked-in standardization)."""
    is_online = rng.random(n) < 0.4
    columns = [
        rng.lognormal(4.0, 0.8, n),
        rng.integers(0, 24, n),
        rng.exponential(20.0, n),
        rng.beta(2.0, 5.0, n),
        rng.poisson(3.0, n),
        rng.uniform(1.0, 3650.0, n),
        is_online,
        rng.random(n) < 0.1,
        ~is_online & (rng.random(n) < 0.9),
        rng.lognormal(4.0, 0.5, n),
        rng.exponential(240.0, n),
        rng.beta(5.0, 2.0, n),
    ]
    return np.stack(columns, axis=1).astype(np.float32)


def _risk(x: Floats, rng: np.random.Generator) -> Floats:
    """Hidden fraud rule: AND-interactions and a non-monotone night window that a linear model cannot express."""
    amount, hour, distance, merchant, count, age, online, foreign, _, avg, since, trust = x.T
    night = (hour <= 3) | (hour >= 23)
    patterns = (
        night & (amount > 3.5 * avg),  # large night-time spend relative to the cardholder's habit
        (distance > 50) & (merchant > 0.4),  # far from home at a risky merchant
        (foreign > 0) & (online > 0) & (trust < 0.6),  # foreign e-commerce from an untrusted device
        (count >= 7) & (since < 30),  # rapid-fire card testing
    )
    risk: Floats = 2.5 * np.sum(patterns, axis=0) + 0.8 * merchant - 0.3 * (age > 365)
    return (risk + rng.normal(0.0, NOISE, len(x))).astype(np.float32)


def make_dataset(seed: int = SEED) -> Split:
    rng = np.random.default_rng(seed)
    x = _raw_features(rng, N_ROWS)
    risk = _risk(x, rng)
    y: Ints = (risk > RISK_THRESHOLD).astype(np.int64)
    return split(x, y, N_TEST)


def _graph(layers: list[Layer], mean: Floats, std: Floats, name: str) -> bytes:
    """features -> Sub(mean) -> Div(std) -> Gemm (-> Relu -> Gemm)* -> Softmax / ArgMax."""
    inits = [const("mean", mean), const("std", std)]
    nodes = [
        helper.make_node("Sub", ["features", "mean"], ["centered"]),
        helper.make_node("Div", ["centered", "std"], ["z0"]),
    ]
    current = "z0"
    for i, (w, b) in enumerate(layers):
        if i:
            nodes.append(helper.make_node("Relu", [current], [f"relu{i}"]))
            current = f"relu{i}"
        inits += [const(f"w{i}", w), const(f"b{i}", b)]
        nodes.append(helper.make_node("Gemm", [current, f"w{i}", f"b{i}"], [f"gemm{i}"]))
        current = f"gemm{i}"
    head, outputs = classifier_head(current, len(CLASSES), "scores", "label")
    graph = helper.make_graph(nodes + head, name, [float_input("features", [len(FEATURES)])], outputs, inits)
    metadata = {"classes": ",".join(CLASSES), "features": ",".join(f for f, _ in FEATURES)}
    return serialize(graph, "Fraud scoring on 12 raw card-transaction features.", metadata)


def build_fraud() -> list[BuiltModel]:
    data = make_dataset()
    mean = data.x_train.mean(axis=0)
    std = data.x_train.std(axis=0) + np.float32(1e-6)  # guard constant columns
    z = (data.x_train - mean) / std
    candidates = {
        1: fit_linear(z, data.y_train, len(CLASSES), Schedule(epochs=10, batch=256, lr=0.02, seed=SEED)),
        2: fit_mlp(
            z, data.y_train, len(CLASSES), hidden=32, schedule=Schedule(epochs=20, batch=128, lr=0.02, seed=SEED)
        ),
    }
    built = []
    for version, layers in candidates.items():
        onnx_bytes = _graph(layers, mean, std, f"fraud_v{version}")
        accuracy = ort_accuracy(onnx_bytes, "features", "label", data)
        built.append(BuiltModel("fraud", version, onnx_bytes, accuracy, {"features": data.x_test}))
    return built
