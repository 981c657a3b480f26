"""ops/: promtool accepts the scrape config and the alert rules, the alerts fire on
their unit-test series, and every metric the alerts and the dashboard use is one
the service really exports."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from prometheus_client import CollectorRegistry

from tests.support import REPO
from vpp.cli import build_parser
from vpp.metrics import Metrics
from vpp.supervisor._metrics import SupervisorMetrics

OPS = REPO / "ops"


def promtool(*args: str) -> subprocess.CompletedProcess[str]:
    exe = shutil.which("promtool")
    if exe is None:
        pytest.fail("promtool not found: install Debian's 'prometheus' package (./run test does)")
    return subprocess.run(
        [exe, *args], cwd=OPS, capture_output=True, text=True, timeout=60, check=False
    )


def test_promtool_check_config() -> None:
    result = promtool("check", "config", "prometheus.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_promtool_check_rules() -> None:
    result = promtool("check", "rules", "alerts.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 8 rules found" in result.stdout


def test_promtool_rule_unit_tests() -> None:
    result = promtool("test", "rules", "alerts.test.yml")
    assert result.returncode == 0, result.stdout + result.stderr


def test_alerts_cover_what_operations_asked_for() -> None:
    rules = yaml.safe_load((OPS / "alerts.yml").read_text())
    names = {r["alert"] for g in rules["groups"] for r in g["rules"]}
    assert {
        "VppServiceDown",
        "VppAdapterDisconnected",
        "VppTelemetryStale",
        "VppEventUnderDelivering",
        "VppSolverTimeHigh",
    } <= names


def _exported_names() -> set[str]:
    registry = CollectorRegistry()
    Metrics(registry)
    SupervisorMetrics(registry, lambda: [])
    names: set[str] = set()
    for family in registry.collect():
        names.add(family.name)
        for sample in family.samples:
            names.add(sample.name)
    # families without samples yet (custom collectors) still describe themselves
    for collector in list(registry._collector_to_names):
        for family in collector.describe() if hasattr(collector, "describe") else []:
            names.add(family.name)
            if family.type == "counter":
                names.add(family.name + "_total")
    return names


def _used_names(text: str) -> set[str]:
    return {
        re.sub(r"_(bucket|sum|count)$", "", n) if n.endswith(("_bucket", "_sum", "_count")) else n
        for n in re.findall(r"\b(vpp_[a-z0-9_]+)", text)
    }


def test_every_metric_in_alerts_and_dashboard_is_exported() -> None:
    exported = _exported_names()
    assert "vpp_adapter_connected" in exported and "vpp_no_such_metric" not in exported
    exported |= {n + "_bucket" for n in exported} | {n + "_count" for n in exported}
    alerts = (OPS / "alerts.yml").read_text()
    dashboard = json.loads((OPS / "grafana" / "park-vpp.json").read_text())
    exprs = (
        " ".join(t["expr"] for p in dashboard["panels"] for t in p.get("targets", []))
        + " "
        + json.dumps(dashboard["templating"])
    )
    missing = {
        name
        for name in _used_names(alerts) | _used_names(exprs)
        if name not in exported and name + "_total" not in exported
    }
    assert not missing, f"used in ops/ but not exported: {sorted(missing)}"


def test_dashboard_is_valid_grafana_json() -> None:
    dashboard = json.loads((OPS / "grafana" / "park-vpp.json").read_text())
    assert dashboard["uid"] and dashboard["panels"]
    ids = [p["id"] for p in dashboard["panels"]]
    assert len(ids) == len(set(ids))
    for panel in dashboard["panels"]:
        assert panel["targets"], panel["title"]


@pytest.mark.parametrize("unit", sorted(OPS.glob("**/*.service")), ids=lambda p: p.name)
def test_every_unit_runs_a_command_line_the_cli_accepts(unit: Path) -> None:
    """`vpp serve --config F` is refused (the option goes before the command): catch it here."""
    for line in unit.read_text().splitlines():
        if line.startswith("ExecStart=") and "/bin/vpp " in line:
            args = shlex.split(line.removeprefix("ExecStart="))[1:]
            parsed = build_parser().parse_args(args)
            assert parsed.config == Path("/etc/park-vpp/vpp.toml")
