"""`/metrics` of a real daemon as an operator alerts on it, and the shipped rules and dashboard.

promtool (Debian's `prometheus` package; `scripts/services` installs it for CI)
checks the exposition, the alerting rules and their unit tests; where it is
absent those checks skip and say so.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from omnisync import __version__
from tests.daemon.harness import DaemonProcess, replace_file
from tests.daemon.yamlconfig import ExportYaml
from tests.operator.configs import write_config

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
ALERTS = EXAMPLES / "prometheus" / "alerts.yml"
ALERTS_TEST = EXAMPLES / "prometheus" / "alerts_test.yml"
DASHBOARD = EXAMPLES / "grafana" / "omnisync-dashboard.json"

needs_promtool = pytest.mark.skipif(
    shutil.which("promtool") is None,
    reason="promtool is not installed (apt-get install prometheus; scripts/services does it)",
)

EXPORTS = (
    ExportYaml("weekly", schedule="every: 15m"),
    ExportYaml("adhoc", schedule=None),
    ExportYaml("paused", enabled=False),
)
PER_EXPORT = (
    "omnisync_contacts_sent_total",
    "omnisync_invalid_rows_total",
    "omnisync_contacts_failed_total",
    "omnisync_contacts_pending_total",
    "omnisync_run_duration_seconds_count",
    "omnisync_export_running",
)
#: An identifier in PromQL: a metric name, a label, a function or a keyword.
IDENTIFIER = re.compile(r"[A-Za-z_:][A-Za-z0-9_:]*")


def samples(text: str) -> dict[str, float]:
    """``name{labels}`` → value, for every sample of an exposition."""
    found = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            found[series] = float(value)
    return found


def exported_names(text: str) -> set[str]:
    """The names an exposition declares (``# TYPE``), with a histogram's series names."""
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "histogram":
                names.update(f"{name}{suffix}" for suffix in ("_bucket", "_sum", "_count"))
    return names


def metric_names(expression: str) -> set[str]:
    """The omnisync metrics an expression names (quoted label values left out)."""
    unquoted = re.sub(r'"(?:[^"\\]|\\.)*"', '""', expression)
    return {name for name in IDENTIFIER.findall(unquoted) if name.startswith("omnisync_")}


@pytest.fixture(scope="module")
def daemon(tmp_path_factory):
    """A daemon that has run nothing yet, with three exports; its config path."""
    directory = tmp_path_factory.mktemp("metrics")
    config = write_config(directory / "conf", *EXPORTS)
    process = DaemonProcess(
        config_path=config, state_dir=directory / "conf" / "state", log_path=directory / "log"
    ).start()
    yield process
    assert process.stop() == 0


def test_every_configured_export_has_its_series_from_the_start(daemon):
    exposition = daemon.metrics()
    values = samples(exposition)
    for export in EXPORTS:
        for outcome in ("succeeded", "partial", "failed"):
            assert values[f'omnisync_runs_total{{export="{export.name}",outcome="{outcome}"}}'] == 0
        assert values[f'omnisync_last_success_timestamp_seconds{{export="{export.name}"}}'] == 0
        for name in PER_EXPORT:
            assert values[f'{name}{{export="{export.name}"}}'] == 0, name
    assert values['omnisync_rate_limited_total{connection="main"}'] == 0
    revision = daemon.status()["config"]["revision"]
    assert values[f'omnisync_build_info{{version="{__version__}"}}'] == 1
    assert values[f'omnisync_config_info{{revision="{revision}"}}'] == 1
    assert "_created" not in exposition


def test_only_the_enabled_export_with_a_schedule_is_scheduled(daemon):
    """What OmnisyncExportNoRecentSuccess joins on: disabled and on-demand exports never page."""
    values = samples(daemon.metrics())
    assert {
        series: value for series, value in values.items() if "omnisync_export_scheduled{" in series
    } == {
        'omnisync_export_scheduled{export="weekly"}': 1,
        'omnisync_export_scheduled{export="adhoc"}': 0,
        'omnisync_export_scheduled{export="paused"}': 0,
    }


@needs_promtool
def test_promtool_finds_nothing_to_say_about_the_metrics(daemon):
    result = subprocess.run(
        ["promtool", "check", "metrics"],
        input=daemon.metrics(),
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.strip() == "" and result.stderr.strip() == "", result.stdout


def test_a_reload_moves_the_revision_and_drops_removed_exports(daemon):
    config = daemon.config_path
    before = daemon.status()["config"]["revision"]
    replace_file(config, config.read_text().replace("  adhoc:", "  adhoc2:", 1))
    after = daemon.wait_status(
        lambda s: s["config"]["revision"] != before, message="the reload", timeout=30
    )["config"]["revision"]
    values = samples(daemon.metrics())
    assert [s for s in values if s.startswith("omnisync_config_info")] == [
        f'omnisync_config_info{{revision="{after}"}}'
    ]
    assert not [s for s in values if 'export="adhoc"' in s]
    assert values['omnisync_runs_total{export="adhoc2",outcome="failed"}'] == 0


def expressions_of_dashboard() -> list[str]:
    dashboard = json.loads(DASHBOARD.read_text())
    found = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    found += [a["expr"] for a in dashboard["annotations"]["list"] if "expr" in a]
    for variable in dashboard["templating"]["list"]:
        query = variable.get("query")
        if isinstance(query, dict):
            found.append(query["query"])
    return found


def expressions_of_alerts() -> list[str]:
    rules = yaml.safe_load(ALERTS.read_text())
    return [rule["expr"] for group in rules["groups"] for rule in group["rules"]]


@pytest.mark.parametrize(
    "expressions", [expressions_of_dashboard, expressions_of_alerts], ids=["grafana", "alerts"]
)
def test_every_expression_names_only_metrics_the_daemon_exports(daemon, expressions):
    exported = exported_names(daemon.metrics())
    for expression in expressions():
        named = metric_names(expression)
        # Only the daemon-down alert reads Prometheus's own `up`.
        assert named or expression.startswith("up{"), f"no omnisync metric in {expression!r}"
        assert named <= exported, f"{sorted(named - exported)} in {expression!r} are not exported"


@needs_promtool
def test_the_dashboard_expressions_are_valid_promql(tmp_path):
    """promtool parses each of them, as a recording rule (Grafana's variables filled in)."""
    rules = [
        {
            "record": f"omnisync:dashboard_{index}",
            "expr": expression.replace("$__rate_interval", "5m").replace("$instance", ".*"),
        }
        for index, expression in enumerate(expressions_of_dashboard())
        if not expression.startswith("label_values(")
    ]
    path = tmp_path / "dashboard-rules.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}))
    result = subprocess.run(
        ["promtool", "check", "rules", str(path)], capture_output=True, text=True, check=False
    )
    assert result.returncode == 0, result.stdout + result.stderr


@needs_promtool
def test_the_alerting_rules_pass_promtool_check_and_their_unit_tests():
    checked = subprocess.run(
        ["promtool", "check", "rules", str(ALERTS)], capture_output=True, text=True, check=False
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    alerts = {
        rule["alert"]
        for group in yaml.safe_load(ALERTS.read_text())["groups"]
        for rule in group["rules"]
    }
    assert {
        "OmnisyncExportFailing",
        "OmnisyncExportNeverSucceeded",
        "OmnisyncConfigReloadFailing",
        "OmnisyncRateLimitedRising",
    } <= alerts
    tested = subprocess.run(
        ["promtool", "test", "rules", ALERTS_TEST.name],
        cwd=ALERTS_TEST.parent,
        capture_output=True,
        text=True,
        check=False,
    )
    assert tested.returncode == 0, tested.stdout + tested.stderr
