"""models/build.py: deterministic output, the tensor contracts the server relies on, and accuracy."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType
from typing import NamedTuple

import numpy as np
import onnx
import onnxruntime as ort
import pytest

from server.model_config import load_model_config
from server.predictions.profile import load_profile

MODELS_DIR = Path(__file__).resolve().parents[2] / "models"


class Contract(NamedTuple):
    input_name: str
    dims: tuple[int, ...]  # after the dynamic "batch" dimension
    probs_name: str
    label_name: str
    n_classes: int


CONTRACTS = {
    "fraud/1": Contract("features", (12,), "scores", "label", 2),
    "fraud/2": Contract("features", (12,), "scores", "label", 2),
    "shapes/1": Contract("image", (1, 16, 16), "probabilities", "class_id", 4),
}
CONFIGS = {
    "fraud": "# Fraud scoring on 12 raw transaction features. Two versions are served: the logistic\n"
    "# regression (v1) is stable, the MLP (v2) is a 10 % canary, judged and rolled back by the server.\n"
    'max_batch_size = 64\n\n[versions]\npolicy = "all"\n\n[routing]\nweights = { "1" = 90, "2" = 10 }\n'
    "# Callers that send a user_id (request parameter or gRPC metadata) stay on one version.\n"
    'sticky_key = "user_id"\n\n[routing.judge]\nenabled = true\n',
    "shapes": "# 16x16 grayscale shape classifier.\nmax_batch_size = 32\n",
}


def _load_builder() -> ModuleType:
    # models/ is deliberately not a package, so load the script from its path.
    spec = importlib.util.spec_from_file_location("oip_models_build", MODELS_DIR / "build.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def builds(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, float]]:
    builder = _load_builder()
    first, second = tmp_path_factory.mktemp("build_a"), tmp_path_factory.mktemp("build_b")
    accuracies = builder.build_repository(first)
    assert builder.build_repository(second) == accuracies
    return first, second, accuracies


def _files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def _session(path: Path) -> ort.InferenceSession:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def test_rebuild_is_byte_identical(builds: tuple[Path, Path, dict[str, float]]) -> None:
    first, second, _ = builds
    a, b = _files(first), _files(second)
    assert a.keys() == b.keys()
    for name in a:
        assert a[name] == b[name], name


def test_layout_and_configs(builds: tuple[Path, Path, dict[str, float]]) -> None:
    first, _, _ = builds
    expected = {f"{key}/model.onnx" for key in CONTRACTS} | {f"{m}/config.toml" for m in CONFIGS} | {"README.md"}
    expected |= {f"{key}/reference.json" for key in CONTRACTS}
    assert set(_files(first)) == expected
    for name, text in CONFIGS.items():
        assert (first / name / "config.toml").read_text() == text
        assert (MODELS_DIR / name / "config.toml").read_text() == text
    routing = load_model_config(MODELS_DIR / "fraud").routing  # the server accepts it, as meant
    assert routing.weights == {1: 90, 2: 10} and routing.sticky_key == "user_id" and routing.judge.enabled


def test_model_headers_and_size(builds: tuple[Path, Path, dict[str, float]]) -> None:
    first, _, _ = builds
    total = 0
    for key in CONTRACTS:
        path = first / key / "model.onnx"
        model = onnx.load(str(path))
        assert model.ir_version == 9
        assert [(o.domain, o.version) for o in model.opset_import] == [("", 17)]
        assert model.producer_name == "oip-example-builder"
        total += path.stat().st_size
    assert total < 2_000_000


@pytest.mark.parametrize("where", ["fresh", "committed"])
@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_tensor_contract(builds: tuple[Path, Path, dict[str, float]], key: str, where: str) -> None:
    root = builds[0] if where == "fresh" else MODELS_DIR
    c = CONTRACTS[key]
    session = _session(root / key / "model.onnx")
    [inp] = session.get_inputs()
    assert (inp.name, inp.type, inp.shape) == (c.input_name, "tensor(float)", ["batch", *c.dims])
    outputs = [(o.name, o.type, o.shape) for o in session.get_outputs()]
    expected = [(c.probs_name, "tensor(float)", ["batch", c.n_classes]), (c.label_name, "tensor(int64)", ["batch"])]
    assert outputs == expected


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_batch_of_three(builds: tuple[Path, Path, dict[str, float]], key: str) -> None:
    c = CONTRACTS[key]
    batch = np.random.default_rng(0).random((3, *c.dims)).astype(np.float32)
    probs, labels = _session(builds[0] / key / "model.onnx").run(None, {c.input_name: batch})
    assert probs.shape == (3, c.n_classes) and probs.dtype == np.float32
    assert labels.shape == (3,) and labels.dtype == np.int64
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-5)
    np.testing.assert_array_equal(labels, probs.argmax(axis=1))


def test_accuracy(builds: tuple[Path, Path, dict[str, float]]) -> None:
    _, _, accuracies = builds
    assert set(accuracies) == set(CONTRACTS)
    assert accuracies["fraud/2"] >= accuracies["fraud/1"]
    assert accuracies["fraud/2"] > 0.96
    assert accuracies["shapes/1"] > 0.9


@pytest.mark.parametrize("key", sorted(CONTRACTS))
def test_committed_reference_profiles_are_the_built_ones(builds: tuple[Path, Path, dict[str, float]], key: str) -> None:
    fresh = (builds[0] / key / "reference.json").read_bytes()
    assert (MODELS_DIR / key / "reference.json").read_bytes() == fresh, "run `make models` and commit the profiles"
    profile = load_profile(MODELS_DIR / key / "reference.json")
    c = CONTRACTS[key]
    assert profile.samples > 0 and set(profile.classes) == {c.probs_name, c.label_name}
    assert sum(profile.classes[c.label_name].values()) == pytest.approx(1.0, abs=1e-4)
