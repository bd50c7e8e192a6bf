"""examples/kubernetes: the ConfigMap's config is valid, its secrets all come from the
Secret, and the Deployment runs the daemon on that config with probes on /healthz."""

from __future__ import annotations

from pathlib import Path

import yaml

from omnisync.config.loader import load_config
from omnisync.config.secrets import secret_references
from tests.config.helpers import REPOSITORY

EXAMPLE = REPOSITORY / "examples" / "kubernetes"


def _documents(name: str) -> list[dict]:
    return [document for document in yaml.safe_load_all((EXAMPLE / name).read_text()) if document]


def test_the_configmap_holds_a_valid_replicated_config_fed_by_the_secret(tmp_path: Path) -> None:
    (configmap,) = _documents("configmap.yaml")
    (secret,) = _documents("secret.yaml")
    config_file = tmp_path / "omnisync.yaml"
    config_file.write_text(configmap["data"]["omnisync.yaml"])
    config = load_config(config_file, environ={"HOME": "/home/omnisync"})
    assert config.daemon.state.shared and config.daemon.state.dsn is not None
    given = set(secret["stringData"])
    needed = {reference.name for _, reference, _header in secret_references(config)}
    assert needed <= given, needed - given
    # No secret value in the ConfigMap; placeholders only in the Secret.
    assert all("CHANGE-ME" in value for value in secret["stringData"].values())


def test_the_deployment_runs_three_replicas_with_health_probes() -> None:
    deployment = next(d for d in _documents("deployment.yaml") if d["kind"] == "Deployment")
    assert deployment["spec"]["replicas"] == 3
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert "daemon" in container["args"] or "daemon" in container.get("command", [])
    for probe in ("livenessProbe", "readinessProbe"):
        assert container[probe]["httpGet"]["path"] == "/healthz"
    grace = deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
    assert grace > 30  # longer than the daemon's shutdown timeout
