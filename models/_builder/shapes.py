"""Shape classifier: numpy-drawn 16x16 images, fixed random conv features and a closed-form ridge read-out."""

from __future__ import annotations

import numpy as np
from onnx import helper

from .common import BuiltModel, Floats, Ints, Split, classifier_head, const, float_input, ort_accuracy, serialize, split
from .train import one_hot, softmax

SEED = 4321
SIZE = 16
N_IMAGES = 6_000
N_TEST = 2_000
N_FILTERS = 16
RIDGE = 1.0
CLASSES = ("circle", "square", "cross", "stripes")


def _masks(rng: np.random.Generator, n: int) -> Floats:
    """Draw every class's mask for every image (vectorised); the caller picks one per image."""
    yy, xx = np.mgrid[0:SIZE, 0:SIZE].astype(np.float32)
    cy, cx = (rng.uniform(5.0, 10.0, (2, n, 1, 1))).astype(np.float32)
    radius = rng.uniform(2.5, 5.5, (n, 1, 1))
    half = rng.integers(2, 5, (n, 1, 1)) + 0.5
    arm = rng.integers(3, 6, (n, 1, 1)) + 0.5
    width = rng.integers(1, 3, (n, 1, 1)) - 0.5
    period = rng.integers(3, 5, (n, 1, 1))
    phase = rng.integers(0, 4, (n, 1, 1))
    vertical = rng.random((n, 1, 1)) < 0.5
    dy, dx = np.abs(yy - cy), np.abs(xx - cx)
    circle = dy**2 + dx**2 <= radius**2
    square = (dy <= half) & (dx <= half)
    cross = ((dy <= width) & (dx <= arm)) | ((dx <= width) & (dy <= arm))
    stripes = ((np.where(vertical, xx, yy) + phase) % period) < 1
    return np.stack([circle, square, cross, stripes], axis=1).astype(np.float32)


def make_dataset(seed: int = SEED) -> Split:
    """Balanced classes with random position, size, brightness and pixel noise."""
    rng = np.random.default_rng(seed)
    y: Ints = rng.permutation(np.arange(N_IMAGES) % len(CLASSES)).astype(np.int64)
    shapes = _masks(rng, N_IMAGES)[np.arange(N_IMAGES), y]
    brightness = rng.uniform(0.6, 1.0, (N_IMAGES, 1, 1))
    noisy = shapes * brightness + rng.normal(0.0, 0.1, shapes.shape)
    x = np.clip(noisy, 0.0, 1.0).astype(np.float32)[:, None]  # NCHW with one channel
    return split(x, y, N_TEST)


def random_filters(seed: int = SEED) -> Floats:
    """Untrained 3x3 filters: random projections are enough features for a linear read-out on these images."""
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((N_FILTERS, 1, 3, 3)) / 3.0).astype(np.float32)


def conv_features(x: Floats, filters: Floats) -> Floats:
    """numpy twin of Conv(pad 1) -> Relu -> MaxPool(2) -> Flatten, used only for fitting the read-out."""
    padded = np.pad(x, ((0, 0), (0, 0), (1, 1), (1, 1)))
    windows = np.lib.stride_tricks.sliding_window_view(padded, (3, 3), axis=(2, 3))  # n, c, h, w, 3, 3
    n, c, h, w = x.shape
    patches = windows.transpose(0, 2, 3, 1, 4, 5).reshape(n, h, w, c * 9)  # im2col: one matmul instead of einsum
    conv: Floats = np.maximum(patches @ filters.reshape(len(filters), -1).T, 0)  # n, h, w, k
    pooled: Floats = conv.reshape(n, h // 2, 2, w // 2, 2, len(filters)).max(axis=(2, 4))
    return pooled.transpose(0, 3, 1, 2).reshape(n, -1).astype(np.float32)  # ONNX Flatten order is k, h, w


def ridge_readout(features: Floats, y: Ints) -> tuple[Floats, Floats]:
    """Closed-form ridge regression onto one-hot targets (float64 normal equations for stability)."""
    design = np.hstack([features, np.ones((len(features), 1), np.float32)]).astype(np.float64)
    gram = design.T @ design + RIDGE * np.eye(design.shape[1])
    coef = np.linalg.solve(gram, design.T @ one_hot(y, len(CLASSES)))
    return coef[:-1].astype(np.float32), coef[-1].astype(np.float32)


def fit_temperature(scores: Floats, y: Ints) -> float:
    """Ridge outputs live near [0, 1], so a plain softmax would be almost uniform; pick the scale with best NLL."""
    grid = [1.0, 2.0, 4.0, 8.0, 16.0, 32.0]
    nll = [-np.mean(np.log(softmax(scores * t)[np.arange(len(y)), y] + 1e-12)) for t in grid]
    return grid[int(np.argmin(nll))]


def _graph(filters: Floats, weight: Floats, bias: Floats) -> bytes:
    inits = [const("conv_w", filters), const("conv_b", np.zeros(N_FILTERS, np.float32))]
    inits += [const("fc_w", weight), const("fc_b", bias)]
    nodes = [
        helper.make_node("Conv", ["image", "conv_w", "conv_b"], ["conv"], kernel_shape=[3, 3], pads=[1, 1, 1, 1]),
        helper.make_node("Relu", ["conv"], ["relu"]),
        helper.make_node("MaxPool", ["relu"], ["pool"], kernel_shape=[2, 2], strides=[2, 2]),
        helper.make_node("Flatten", ["pool"], ["flat"], axis=1),
        helper.make_node("Gemm", ["flat", "fc_w", "fc_b"], ["logits"]),
    ]
    head, outputs = classifier_head("logits", len(CLASSES), "probabilities", "class_id")
    graph = helper.make_graph(nodes + head, "shapes_v1", [float_input("image", [1, SIZE, SIZE])], outputs, inits)
    return serialize(graph, "16x16 grayscale shape classifier.", {"classes": ",".join(CLASSES)})


def build_shapes() -> list[BuiltModel]:
    data = make_dataset()
    filters = random_filters()
    features = conv_features(data.x_train, filters)
    weight, bias = ridge_readout(features, data.y_train)
    temperature = fit_temperature(features @ weight + bias, data.y_train)
    onnx_bytes = _graph(filters, weight * temperature, bias * temperature)  # fold the scale into the Gemm
    accuracy = ort_accuracy(onnx_bytes, "image", "class_id", data)
    return [BuiltModel("shapes", 1, onnx_bytes, accuracy, {"image": data.x_test})]
