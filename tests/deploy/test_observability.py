"""The observability kit: deploy/prometheus/alerts.yaml (checked and unit-tested by promtool), the Grafana dashboard
deploy/grafana/oip-inference-server.json, the runbook docs/operations.md, and a cross-check that every metric they
query is a family a real server exports, with the labels they match on."""

from __future__ import annotations

import json
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from prometheus_client.parser import text_string_to_metric_families

from clients import InferenceClient, InferenceServerError
from server.admin.cli import main as admin_main
from tests.support.process import REPO_ROOT, ServerProcess
from tests.support.setup_scripts import BASH, apt_calls, recording_apt_get, run_script, stub, stub_path

PROMETHEUS_DIR = REPO_ROOT / "deploy" / "prometheus"
ALERTS = PROMETHEUS_DIR / "alerts.yaml"
ALERTS_TEST = PROMETHEUS_DIR / "alerts_test.yaml"
DASHBOARD = REPO_ROOT / "deploy" / "grafana" / "oip-inference-server.json"
RUNBOOK = REPO_ROOT / "docs" / "operations.md"

PROMTOOL = shutil.which("promtool")
needs_promtool = pytest.mark.skipif(
    PROMTOOL is None,
    reason="promtool is not installed: `make observability-setup` installs it (Debian package prometheus)",
)

#: Families that only the --workers supervisor exports; checked against a `--workers 2` server.
SUPERVISOR_ONLY = {"inference_worker_restarts"}
#: Labels Prometheus adds to every scraped series.
TARGET_LABELS = {"job", "instance"}
#: Dashboard variables, replaced by values a plain PromQL parser accepts.
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$job": ".*", "$model": ".*", "$version": ".*"}

FRAUD_CONFIG = """\
max_batch_size = 64

[versions]
policy = "all"

[routing]
weights = { "1" = 50, "2" = 50 }
sticky_key = "user_id"
shadow = { version = 3, fraction = 1.0 }

[routing.judge]
enabled = true
interval_s = 0.2
window_s = 1.0

[telemetry]
watch_inputs = true

[telemetry.drift]
window_s = 60.0
min_samples = 20
interval_s = 0.2
"""


# ----------------------------------------------------------------------------------------- reading the files


def alert_rules() -> list[dict[str, str]]:
    """alert, expr, summary, description and runbook_url of each rule in alerts.yaml.

    A small reader for the layout of our file (`expr:` on one line or as a `|` block; annotations on one line or as
    a `>-` block), so that the test needs no YAML library; test_alert_rules_are_read_whole checks it missed none.
    """
    rules: list[dict[str, str]] = []
    lines = ALERTS.read_text().splitlines()
    index = 0
    while index < len(lines):
        line = lines[index]
        index += 1
        match = re.match(r"\s*- alert: (\w+)$", line)
        if match:
            rules.append({"alert": match.group(1)})
            continue
        match = re.match(r"(\s*)(expr|summary|description|runbook_url): ?(.*)$", line)
        if not match or not rules:
            continue
        indent, key, value = len(match.group(1)), match.group(2), match.group(3).strip()
        if value in {"|", ">-"}:
            block = []
            while index < len(lines) and (not lines[index].strip() or _indent(lines[index]) > indent):
                block.append(lines[index].strip())
                index += 1
            value = (" " if value == ">-" else "\n").join(part for part in block if part)
        rules[-1][key] = value.strip('"')
    return rules


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip())


def dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return loaded


def dashboard_panels() -> list[dict[str, Any]]:
    panels: list[dict[str, Any]] = []
    for panel in dashboard()["panels"]:
        panels.append(panel)
        panels.extend(panel.get("panels", []))  # panels inside collapsed rows
    return panels


def dashboard_exprs() -> list[str]:
    return [target["expr"] for panel in dashboard_panels() for target in panel.get("targets", [])]


def without_variables(expr: str) -> str:
    for variable, value in GRAFANA_VARIABLES.items():
        expr = expr.replace(variable, value)
    return expr


# -------------------------------------------------------------------------------------------- rough PromQL

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SELECTOR = re.compile(r"([A-Za-z_:][\w:]*)\s*\{([^}]*)\}")
_MATCHER_LABEL = re.compile(r"([A-Za-z_]\w*)\s*(?:=~|!~|!=|=)")
_BRACES = re.compile(r"\{[^}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_IDENTIFIER = re.compile(r"(?<![\w.:$])([A-Za-z_:][\w:]*)(\s*\()?")
_KEYWORDS = {"by", "without", "on", "ignoring", "group_left", "group_right", "and", "or", "unless", "offset", "bool"}


def metric_names(expr: str) -> set[str]:
    """The metric names an expression reads: identifiers that are not functions, keywords or labels."""
    text = _STRING.sub('""', expr)
    text = _GROUPING.sub(" ", _RANGE.sub(" ", _BRACES.sub(" ", text)))
    return {
        name for name, call in _IDENTIFIER.findall(text) if not call and name not in _KEYWORDS and name not in {"inf"}
    }


def selectors(expr: str) -> list[tuple[str, set[str]]]:
    """(metric name, label names matched on) of each `name{...}` selector."""
    text = _STRING.sub('""', expr)
    return [(name, set(_MATCHER_LABEL.findall(body))) for name, body in _SELECTOR.findall(text)]


def test_the_promql_reader_finds_metrics_and_matched_labels() -> None:
    expr = (
        'histogram_quantile(0.99, sum by (model, le) (rate(a_bucket{model=~"$model", code!="x{y}"}[5m]))) / '
        "ignoring (code) group_left () sum(b_total offset 10m) > 1e3 and on (model) c unless time() - d"
    )
    assert metric_names(without_variables(expr)) == {"a_bucket", "b_total", "c", "d"}
    assert selectors(expr) == [("a_bucket", {"model", "code"})]


# ------------------------------------------------------------------------------------------- setup script

SETUP = PROMETHEUS_DIR / "setup_promtool.sh"


def _setup_path(tmp_path: Path, *, uid: int = 0, apt: bool = True, promtool: bool = False) -> Path:
    """A bin directory of stubs (`id`, `apt-get`, `promtool`) and the real helpers the script uses."""
    bin_dir = stub_path(tmp_path, uid)
    if apt:  # `install` puts a promtool on PATH, as the package does
        recording_apt_get(bin_dir, tmp_path, on_install=f"cp {bin_dir}/id {bin_dir}/promtool")
    if promtool:
        stub(bin_dir, "promtool", "exit 0")
    return bin_dir


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_setup_installs_promtool_as_root_after_saying_what(tmp_path: Path) -> None:
    done = run_script(SETUP, _setup_path(tmp_path))
    assert done.returncode == 0, done.stderr
    announce, result = done.stdout.splitlines()
    assert "installing promtool" in announce and "apt-get install prometheus" in announce
    assert "PROMTOOL_INSTALL=no" in announce
    assert result.startswith("observability-setup: installed prometheus")
    update, install = apt_calls(tmp_path)
    assert update.startswith("update") and install.split()[0] == "install" and "prometheus" in install.split()


@pytest.mark.skipif(BASH is None, reason="needs bash")
def test_setup_does_nothing_when_promtool_is_there(tmp_path: Path) -> None:
    done = run_script(SETUP, _setup_path(tmp_path, promtool=True))
    assert (done.returncode, done.stdout, done.stderr) == (0, "", "")
    assert apt_calls(tmp_path) == []


@pytest.mark.skipif(BASH is None, reason="needs bash")
@pytest.mark.parametrize(
    ("uid", "apt", "env", "reason"),
    [
        (1000, True, {}, "installing it needs root"),
        (0, False, {}, "no apt-get on this system"),
        (0, True, {"PROMTOOL_INSTALL": "no"}, "PROMTOOL_INSTALL=no"),
    ],
    ids=["not-root", "no-apt-get", "opted-out"],
)
def test_setup_fails_with_one_clear_line_where_it_cannot_install(
    tmp_path: Path, uid: int, apt: bool, env: dict[str, str], reason: str
) -> None:
    done = run_script(SETUP, _setup_path(tmp_path, uid=uid, apt=apt), **env)
    assert done.returncode == 1 and done.stdout == ""
    (line,) = done.stderr.splitlines()
    assert reason in line and "promtool not installed" in line and "apt-get install prometheus" in line
    assert apt_calls(tmp_path) == []


# ------------------------------------------------------------------------------------------------- alerts


def test_alert_rules_are_read_whole() -> None:
    rules = alert_rules()
    assert len(rules) == ALERTS.read_text().count("- alert:") >= 8
    for rule in rules:
        assert set(rule) == {"alert", "expr", "summary", "description", "runbook_url"}, rule
        assert all(rule.values()), rule


@needs_promtool
def test_promtool_check_rules_passes() -> None:
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(ALERTS)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(alert_rules())} rules found" in result.stdout


@needs_promtool
def test_promtool_unit_tests_of_the_alerts_pass() -> None:
    result = subprocess.run(
        [str(PROMTOOL), "test", "rules", ALERTS_TEST.name],
        check=False,
        cwd=PROMETHEUS_DIR,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_every_alert_is_unit_tested_firing_and_not_firing() -> None:
    cases: dict[str, set[bool]] = {}
    alertname = ""
    for line in ALERTS_TEST.read_text().splitlines():
        if match := re.match(r"\s*alertname: (\w+)", line):
            alertname = match.group(1)
        elif match := re.match(r"\s*exp_alerts:\s*(\[\])?", line):
            cases.setdefault(alertname, set()).add(match.group(1) is None)
    expected = {rule["alert"]: {True, False} for rule in alert_rules()}
    assert cases == expected


def test_every_alert_links_to_its_runbook_section() -> None:
    anchors = {
        re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")
        for heading in re.findall(r"^#+ (.+)$", RUNBOOK.read_text(), flags=re.MULTILINE)
    }
    for rule in alert_rules():
        assert rule["runbook_url"] == f"docs/operations.md#{rule['alert'].lower()}"
        assert rule["alert"].lower() in anchors, f"docs/operations.md has no section for {rule['alert']}"


# ---------------------------------------------------------------------------------------------- dashboard


def test_dashboard_is_a_grafana_dashboard_with_its_variables() -> None:
    board = dashboard()
    assert board["schemaVersion"] >= 39 and board["uid"] and board["title"]
    variables = {variable["name"]: variable for variable in board["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("model", "version"):
        assert variables[name]["type"] == "query"
        assert variables[name]["query"]["query"].startswith("label_values(")
        assert variables[name]["datasource"]["uid"] == "${datasource}"


def test_every_dashboard_panel_has_a_query_on_the_datasource_variable() -> None:
    panels = dashboard_panels()
    ids = [panel["id"] for panel in panels]
    assert len(ids) == len(set(ids))
    charts = [panel for panel in panels if panel["type"] != "row"]
    assert len(charts) >= 20
    for panel in charts:
        assert panel["title"] and panel["targets"], panel["title"]
        assert panel["datasource"]["uid"] == "${datasource}"
        for target in panel["targets"]:
            assert target["expr"].strip() and target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_dashboard_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for panel in dashboard_panels():
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, panel["title"]
        columns, rows = range(grid["x"], grid["x"] + grid["w"]), range(grid["y"], grid["y"] + grid["h"])
        cells = {(x, y) for x in columns for y in rows}
        assert not cells & taken, f"{panel['title']} overlaps another panel"
        taken |= cells


@needs_promtool
def test_every_dashboard_query_is_valid_promql(tmp_path: Path) -> None:
    """promtool parses each query, as a recording rule (JSON is YAML), with the Grafana variables filled in."""
    rules = [
        {"record": f"dashboard:query_{index}", "expr": without_variables(expr)}
        for index, expr in enumerate(dashboard_exprs())
    ]
    path = tmp_path / "dashboard_rules.json"
    path.write_text(json.dumps({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run([str(PROMTOOL), "check", "rules", str(path)], check=False, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


# ---------------------------------------------------------------------------- cross-check with a real server


def _repository(root: Path) -> Path:
    """The bundled fraud model as v1 and v2 (with their reference profiles) and v2 again as v3, its shadow."""
    model = root / "fraud"
    for version, source in (("1", "1"), ("2", "2"), ("3", "2")):
        (model / version).mkdir(parents=True)
        shutil.copy(REPO_ROOT / "models" / "fraud" / source / "model.onnx", model / version / "model.onnx")
        if version != "3":
            shutil.copy(REPO_ROOT / "models" / "fraud" / source / "reference.json", model / version / "reference.json")
    (model / "config.toml").write_text(FRAUD_CONFIG)
    return root


def _send_traffic(address: str) -> None:
    """Routed, pinned and sticky requests, one sticky key of the wrong type, one bad request and one unknown model."""
    features = np.random.default_rng(11).normal(size=(50, 12)).astype(np.float32)
    with InferenceClient(address) as client:
        for _ in range(8):
            client.infer("fraud", {"features": features})
        client.infer("fraud", {"features": features[:4]}, version=1)
        client.infer("fraud", {"features": features[:4]}, parameters={"user_id": "alice"})
        client.infer("fraud", {"features": features[:4]}, parameters={"user_id": True})
        with pytest.raises(InferenceServerError):
            client.infer("fraud", {"features": features[:, :11]})
        with pytest.raises(InferenceServerError):
            client.infer("no-such-model", {"features": features})


def _families(text: str) -> dict[str, tuple[str, dict[str, set[str]]]]:
    """family name -> (type, sample name -> label names seen on it)."""
    families: dict[str, tuple[str, dict[str, set[str]]]] = {}
    for family in text_string_to_metric_families(text):
        samples: dict[str, set[str]] = {}
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
        families[family.name] = (family.type, samples)
    return families


def _family_of(name: str, families: dict[str, tuple[str, dict[str, set[str]]]]) -> str | None:
    """The exported family a queried series name belongs to, if its type allows that name."""
    if name in families and families[name][0] not in {"counter", "histogram", "summary"}:
        return name
    for suffix, types in (
        ("_total", {"counter"}),
        ("_bucket", {"histogram"}),
        ("_count", {"histogram", "summary"}),
        ("_sum", {"histogram", "summary"}),
    ):
        base = name.removesuffix(suffix)
        if base != name and base in families and families[base][0] in types:
            return base
    return None


def _wait_for(server: ServerProcess, predicate: Any, timeout_s: float = 30.0) -> str:
    deadline = time.monotonic() + timeout_s
    while True:
        text = server.scrape()
        if predicate(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.2)


@pytest.fixture(scope="module")
def single_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a one-process server after traffic, a manual rollback and promotion, and drift scoring."""
    repository = _repository(tmp_path_factory.mktemp("observability-single"))
    with ServerProcess(repository) as server:
        _send_traffic(server.address)
        assert admin_main(["--address", server.address, "rollback", "fraud", "2", "--reason", "test"]) == 0
        assert admin_main(["--address", server.address, "promote", "fraud", "1"]) == 0
        yield _wait_for(
            server,
            lambda text: (
                'inference_drift_score{method="psi",model="fraud"' in text
                and "inference_shadow_comparisons_total{" in text
                and "inference_canary_checks_total{" in text
            ),
        )


@pytest.fixture(scope="module")
def workers_scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """/metrics of a `--workers 2` server after one worker was killed and replaced."""
    repository = _repository(tmp_path_factory.mktemp("observability-workers"))
    with ServerProcess(repository, "--workers", "2") as server:
        _send_traffic(server.address)
        worker_pids = [entry["pid"] for entry in server.logs if entry.get("msg") == "worker started"]
        assert len(worker_pids) == 2
        subprocess.run(["kill", f"-{signal.SIGKILL.value}", str(worker_pids[0])], check=True)
        yield _wait_for(server, lambda text: "inference_worker_restarts_total 1.0" in text, timeout_s=60)


def test_a_replaced_worker_is_counted_by_the_supervisor(workers_scrape: str) -> None:
    families = _families(workers_scrape)
    assert families["inference_worker_restarts"][0] == "counter"
    restarts = [
        sample.value
        for family in text_string_to_metric_families(workers_scrape)
        for sample in family.samples
        if sample.name == "inference_worker_restarts_total"
    ]
    assert restarts == [1.0]


def test_every_metric_queried_is_exported_by_a_real_server(single_scrape: str, workers_scrape: str) -> None:
    single, workers = _families(single_scrape), _families(workers_scrape)
    exprs = [rule["expr"] for rule in alert_rules()] + [without_variables(expr) for expr in dashboard_exprs()]
    queried = set().union(*(metric_names(expr) for expr in exprs))
    assert {"inference_requests_total", "inference_drift_score", "process_cpu_seconds_total"} <= queried
    missing = []
    for name in sorted(queried):
        family = _family_of(name, single)
        if family is None:
            family = _family_of(name, workers)
            if family not in SUPERVISOR_ONLY:
                family = None
        if family is None:
            missing.append(name)
    assert not missing, f"queried but not exported: {missing}"


def test_every_label_matched_on_is_a_label_of_the_exported_series(single_scrape: str, workers_scrape: str) -> None:
    """Labels in selectors must exist on the series (a typo would match nothing); checked where samples exist."""
    exported = _families(single_scrape)
    for name, (kind, samples) in _families(workers_scrape).items():
        exported.setdefault(name, (kind, samples))
    checked = 0
    exprs = [rule["expr"] for rule in alert_rules()] + dashboard_exprs()
    for expr in exprs:
        for name, labels in selectors(expr):
            family = _family_of(name, exported)
            assert family is not None, name
            seen = exported[family][1].get(name)
            if seen is None:
                continue  # no sample of it in this traffic (e.g. non-finite scores)
            assert labels <= seen | TARGET_LABELS, f"{name} has no label {sorted(labels - seen - TARGET_LABELS)}"
            checked += 1
    assert checked >= 40
