"""The operator kit in deploy/prometheus and deploy/grafana, against the code it watches.

promtool (Debian package ``prometheus``, installed by ``scripts/setup``) checks the rules
and the example configuration and runs the rules' unit tests. The rest ties the files to
the code: one rule per alert kind the daemon can raise (found in the code, as the guide's
alert table is), with the severity the code gives it; every metric named in the rules,
their tests and the dashboard is one the node exports, with the labels it has; every
dashboard query parses; every runbook link resolves.
"""

from __future__ import annotations

import ast
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from oracle.monitor.metrics import Metrics
from tests.unit.test_deployment import GUIDE, ROOT, alert_kinds_in_code, modules_reachable_from

PROMETHEUS = ROOT / "deploy" / "prometheus"
RULES = PROMETHEUS / "bme-oracle.rules.yml"
RULE_TESTS = PROMETHEUS / "bme-oracle.rules.test.yml"
EXAMPLE = PROMETHEUS / "prometheus.example.yml"
DASHBOARD = ROOT / "deploy" / "grafana" / "bme-oracle.json"
JOB = "bme-oracle"
#: Series Prometheus adds itself to every scrape.
SCRAPE_SERIES = {"up"}
#: A metric name in a PromQL expression (ours, and the client's standard families).
METRIC_NAME = re.compile(r"\b(?:bme_oracle|process|python)_[a-z0-9_]*[a-z0-9]")


def load_yaml(path: Path) -> Any:
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def rules() -> list[dict[str, Any]]:
    return [rule for group in load_yaml(RULES)["groups"] for rule in group["rules"]]


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    binary = shutil.which("promtool")
    assert binary, (
        "promtool is missing: `bash scripts/setup` installs it (Debian package prometheus)"
    )
    return subprocess.run(
        [binary, *args], cwd=PROMETHEUS, capture_output=True, text=True, timeout=120, check=False
    )


def exported() -> dict[str, set[str]]:
    """Every series name the node's /metrics can carry -> the labels of that series."""
    registry = Metrics().registry
    series: dict[str, set[str]] = {}
    for name, collector in registry._names_to_collectors.items():
        labels = set(getattr(collector, "_labelnames", ()))
        if name.endswith("_bucket"):
            labels.add("le")
        series[name] = labels
    return series


def families() -> set[str]:
    """The node's own metric families (the collectors' base names)."""
    registry = Metrics().registry
    return {
        collector._name
        for collector in registry._collector_to_names
        if getattr(collector, "_name", "").startswith("bme_oracle_")
    }


def dashboard_targets(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, expr) of every query in the dashboard, rows' nested panels too."""
    found = []
    stack = list(dashboard["panels"])
    while stack:
        panel = stack.pop()
        stack.extend(panel.get("panels", []))
        found.extend((panel["title"], t["expr"]) for t in panel.get("targets", []))
    return found


def alert_severities_in_code() -> dict[str, set[str]]:
    """Kind -> the severities the daemon raises it with (``severity=``, default "error").

    Like ``alert_kinds_in_code``, but a kind held in a variable is resolved through the
    assignments to that variable in the same function (``kind = A if ... else B``)."""
    result: dict[str, set[str]] = {}
    for tree in modules_reachable_from("oracle.commands.daemon", "oracle.service").values():
        constants = {
            target.id: node.value.value
            for node in tree.body
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
            for target in node.targets
            if isinstance(target, ast.Name) and isinstance(node.value.value, str)
        }
        for function in ast.walk(tree):
            if not isinstance(function, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            assigned: dict[str, set[str]] = {}
            for node in ast.walk(function):
                if isinstance(node, ast.Assign):
                    values = {
                        constants[n.id]
                        for n in ast.walk(node.value)
                        if isinstance(n, ast.Name) and n.id in constants
                    }
                    for target in node.targets:
                        if isinstance(target, ast.Name):
                            assigned.setdefault(target.id, set()).update(values)
            for call in ast.walk(function):
                if not (
                    isinstance(call, ast.Call)
                    and isinstance(call.func, ast.Attribute)
                    and call.func.attr == "alert"
                    and call.args
                ):
                    continue
                first = call.args[0]
                if isinstance(first, ast.Constant) and isinstance(first.value, str):
                    kinds = {first.value}
                elif isinstance(first, ast.Name) and first.id in constants:
                    kinds = {constants[first.id]}
                elif isinstance(first, ast.Name):
                    kinds = assigned.get(first.id, set())
                    assert kinds, f"cannot tell which kinds `{first.id}` holds"
                else:
                    pytest.fail(f"an alert kind the test cannot read: {ast.unparse(first)}")
                severity = "error"
                for keyword in call.keywords:
                    if keyword.arg == "severity":
                        assert isinstance(keyword.value, ast.Constant), ast.unparse(call)
                        severity = keyword.value.value
                for kind in kinds:
                    result.setdefault(kind, set()).add(severity)
    return result


# ------------------------------------------------------------------------- promtool


def test_promtool_checks_the_rules() -> None:
    result = promtool("check", "rules", RULES.name)
    assert result.returncode == 0, f"promtool check rules:\n{result.stdout}{result.stderr}"
    assert f"SUCCESS: {len(rules())} rules found" in result.stdout


def test_promtool_rule_unit_tests_pass() -> None:
    result = promtool("test", "rules", RULE_TESTS.name)
    assert result.returncode == 0, f"promtool test rules:\n{result.stdout}{result.stderr}"
    assert "SUCCESS" in result.stdout


def test_example_configuration_scrapes_the_job_the_rules_expect() -> None:
    result = promtool("check", "config", EXAMPLE.name)
    assert result.returncode == 0, f"promtool check config:\n{result.stdout}{result.stderr}"
    example = load_yaml(EXAMPLE)
    assert example["rule_files"] == [RULES.name]
    jobs = {job["job_name"]: job for job in example["scrape_configs"]}
    assert jobs[JOB]["metrics_path"] == "/metrics"
    for rule in rules():
        for job in re.findall(r'\bjob="([^"]+)"', rule["expr"]):
            assert job == JOB, f"{rule['alert']}: job {job!r}, the example scrapes {JOB!r}"


# ------------------------------------------------------------------ rules vs the code


def test_every_alert_kind_the_code_raises_has_one_rule_with_its_severity() -> None:
    raised = alert_kinds_in_code()
    severities = alert_severities_in_code()
    assert set(severities) == raised, "the two readings of the code disagree"
    by_kind: dict[str, list[dict[str, Any]]] = {}
    for rule in rules():
        kind = rule["labels"].get("kind")
        if kind is None:  # the node itself down: no webhook can say so
            assert set(METRIC_NAME.findall(rule["expr"])) == set(), rule["alert"]
            assert re.search(rf'\bup\{{job="{JOB}"\}}', rule["expr"]), rule["alert"]
            continue
        by_kind.setdefault(kind, []).append(rule)
    assert set(by_kind) == raised, (
        f"kinds raised without a rule: {sorted(raised - set(by_kind))}; "
        f"rules for kinds never raised: {sorted(set(by_kind) - raised)}"
    )
    for kind, matching in by_kind.items():
        assert len(matching) == 1, f"{kind}: {len(matching)} rules"
        (rule,) = matching
        assert {rule["labels"]["severity"]} == severities[kind], (
            f"{rule['alert']}: severity {rule['labels']['severity']}, "
            f"the webhook's is {sorted(severities[kind])}"
        )
        assert METRIC_NAME.search(rule["expr"]), f"{rule['alert']}: over no node metric"


def test_every_rule_is_shown_firing_and_not_firing() -> None:
    seen: dict[str, set[bool]] = {}
    for group in load_yaml(RULE_TESTS)["tests"]:
        for case in group.get("alert_rule_test", []):
            seen.setdefault(case["alertname"], set()).add(bool(case.get("exp_alerts")))
    for rule in rules():
        assert seen.get(rule["alert"]) == {True, False}, (
            f"{rule['alert']}: the rule tests must show it firing and not firing"
        )


def test_rules_and_their_tests_name_only_exported_metrics_with_their_labels() -> None:
    series = exported()
    for rule in rules():
        for name in METRIC_NAME.findall(rule["expr"]):
            assert name in series, f"{rule['alert']}: {name} is not exported by the node"
    for group in load_yaml(RULE_TESTS)["tests"]:
        for item in group["input_series"]:
            match = re.fullmatch(r"(\w+)\{(.*)\}", item["series"])
            assert match, item["series"]
            name = match.group(1)
            labels = set(re.findall(r'(\w+)="', match.group(2)))
            assert {"job", "instance"} <= labels, f"{item['series']}: scrape labels"
            if name in SCRAPE_SERIES:
                continue
            assert name in series, f"rule tests: {name} is not exported by the node"
            assert labels - {"job", "instance"} == series[name], (
                f"rule tests: {name} has labels {sorted(series[name])}, "
                f"the test gives it {sorted(labels - {'job', 'instance'})}"
            )


def test_runbooks_of_the_rules_are_headings_of_the_guide() -> None:
    headings = re.findall(r"^#+ (.+)$", GUIDE.read_text(), flags=re.M)
    slugs = {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}
    for rule in rules():
        path, _, anchor = rule["annotations"]["runbook"].partition("#")
        assert (ROOT / path) == GUIDE and anchor in slugs, (
            f"{rule['alert']}: runbook {path}#{anchor}"
        )


def test_guide_lists_every_rule() -> None:
    section = GUIDE.read_text().split("### Prometheus and Grafana", 1)[1].split("\n### ", 1)[0]
    listed = set(re.findall(r"^\| `(BmeOracle\w+)` \|", section, flags=re.M))
    assert listed == {rule["alert"] for rule in rules()}


# ------------------------------------------------------------------------- dashboard


def test_dashboard_is_importable_and_queries_only_exported_metrics() -> None:
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    assert dashboard["uid"] == "bme-oracle" and dashboard["title"]
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource"
    assert variables["datasource"]["query"] == "prometheus"
    series = exported()
    targets = dashboard_targets(dashboard)
    assert targets
    used: set[str] = set()
    for title, expr in targets:
        names = METRIC_NAME.findall(expr)
        assert names or re.search(r"\bup\{", expr), f"{title}: {expr} names no metric"
        for name in names:
            assert name in series, f"dashboard panel {title!r}: {name} is not exported"
            used.add(name)
    # every family of ours has a panel (a counter as _total, a histogram by its series)
    shown = {
        family
        for family in families()
        if any(name == family or name.startswith(family + "_") for name in used)
    }
    assert shown == families(), f"metrics without a panel: {sorted(families() - shown)}"
    # every panel reads the data source the importer picks; no two panels overlap
    cells: dict[tuple[int, int], str] = {}
    for panel in dashboard["panels"]:
        if panel["type"] != "row":
            assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}
        box = panel["gridPos"]
        assert box["x"] + box["w"] <= 24, panel["title"]
        for x in range(box["x"], box["x"] + box["w"]):
            for y in range(box["y"], box["y"] + box["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]
    assert len({p["id"] for p in dashboard["panels"]}) == len(dashboard["panels"])


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    """promtool parses every query: each becomes a recording rule in a scratch file."""
    dashboard = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    recording = [
        {"record": f"dashboard:query_{i}", "expr": expr.replace("$instance", ".+")}
        for i, (_, expr) in enumerate(dashboard_targets(dashboard))
    ]
    scratch = tmp_path / "dashboard.rules.yml"
    scratch.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = promtool("check", "rules", str(scratch))
    assert result.returncode == 0, f"dashboard queries:\n{result.stdout}{result.stderr}"
