from __future__ import annotations

import json
import os
import stat

import httpx
import pytest

from omnisync.config.rules import split_listen
from omnisync.daemon.budget import connection_limit
from omnisync.daemon.control import ControlServer, HostNames, TriggerAnswer
from omnisync.daemon.discovery import (
    DaemonClient,
    DaemonInfo,
    DaemonUnavailable,
    TriggerRefused,
    UntrustedStateFile,
    ensure_token,
    find_info,
    read_info,
    read_token,
    remove_info,
    write_info,
)
from tests.cli import run_cli


class Api:
    def __init__(self):
        self.triggered: list[str] = []
        self.runs = {"r-1": {"id": "r-1", "state": "finished", "status": "succeeded"}}

    def healthy(self):
        return True

    def metrics_text(self):
        return b"omnisync_up 1\n", "text/plain; version=0.0.4"

    def status(self):
        return {"exports": {"vip": {"state": "idle"}}}

    def trigger(self, export, *, release_by=None, full=False):
        self.asked = (export, release_by, full)
        if export == "missing":
            return TriggerAnswer(404, {"error": "no export named 'missing'"})
        if export == "busy":
            return TriggerAnswer(409, {"error": "export 'busy' is already running"})
        self.triggered.append(export)
        return TriggerAnswer(202, {"id": "r-1", "export": export, "state": "running"})

    def run(self, run_id):
        return self.runs.get(run_id)

    def token_hint(self):
        return "see the token file"


@pytest.fixture
def server():
    api = Api()
    control = ControlServer("127.0.0.1:0", api, token="s3cret-token-value")
    yield control, api
    control.stop()


def test_read_only_endpoints(server):
    control, _ = server
    base = f"http://{control.address}"
    assert httpx.get(f"{base}/healthz").text == "ok\n"
    metrics = httpx.get(f"{base}/metrics")
    assert metrics.headers["content-type"].startswith("text/plain")
    assert metrics.text == "omnisync_up 1\n"
    assert httpx.get(f"{base}/status").json() == {"exports": {"vip": {"state": "idle"}}}
    assert httpx.get(f"{base}/runs/r-1").json()["status"] == "succeeded"
    assert httpx.get(f"{base}/runs/r-404").status_code == 404
    assert httpx.get(f"{base}/nope").status_code == 404


def test_trigger_needs_the_bearer_token(server):
    control, api = server
    url = f"http://{control.address}/exports/vip/run"
    assert httpx.post(url).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert httpx.post(url, headers={"Authorization": "Basic s3cret-token-value"}).status_code == 401
    assert api.triggered == []
    answer = httpx.post(url, headers={"Authorization": "Bearer s3cret-token-value"})
    assert answer.status_code == 202
    assert answer.json()["id"] == "r-1"
    assert api.triggered == ["vip"]
    assert api.asked == ("vip", None, False)
    released = httpx.post(
        url + "?release_by=olena&full=1", headers={"Authorization": "Bearer s3cret-token-value"}
    )
    assert released.status_code == 202
    assert api.asked == ("vip", "olena", True)
    assert "s3cret" not in repr(control)


def test_client_finds_the_daemon_and_maps_refusals(server, tmp_path):
    control, _ = server
    ensure_token(tmp_path)  # a different token: the configured one wins when given
    info = DaemonInfo(
        pid=os.getpid(),
        address=control.address,
        config_path="/etc/omnisync",
        started_at="now",
    )
    write_info(tmp_path, info)
    assert read_info(tmp_path) == info
    with DaemonClient.find(tmp_path) as client:
        client.use_token("s3cret-token-value")
        assert client.trigger("vip")["export"] == "vip"
        assert client.wait("r-1")["status"] == "succeeded"
        with pytest.raises(TriggerRefused) as missing:
            client.trigger("missing")
        assert missing.value.status == 404
        with pytest.raises(TriggerRefused) as busy:
            client.trigger("busy")
        assert busy.value.status == 409 and "already running" in str(busy.value)
    with DaemonClient.find(tmp_path) as wrong_token, pytest.raises(TriggerRefused) as refused:
        wrong_token.trigger("vip")
    assert refused.value.status == 401
    remove_info(tmp_path, pid=info.pid)
    with pytest.raises(DaemonUnavailable):
        DaemonClient.find(tmp_path)


def test_a_dead_daemon_is_recognised(tmp_path):
    write_info(
        tmp_path,
        DaemonInfo(pid=2**22 + 12345, address="127.0.0.1:9", config_path="", started_at=""),
    )
    with pytest.raises(DaemonUnavailable, match="is gone"):
        DaemonClient.find(tmp_path)
    (tmp_path / "daemon.json").write_text("{not json")
    with pytest.raises(DaemonUnavailable, match="no daemon recorded"):
        DaemonClient.find(tmp_path)


def test_token_file_is_private(tmp_path):
    token = ensure_token(tmp_path)
    path = tmp_path / "control.token"
    assert path.stat().st_mode & 0o777 == 0o600
    assert path.read_text().strip() == token
    assert len(token) >= 32
    assert ensure_token(tmp_path) != token


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:9187", ("127.0.0.1", 9187)),
        ("[::1]:0", ("::1", 0)),
        ("localhost:80", ("localhost", 80)),
    ],
)
def test_split_listen(text, expected):
    assert split_listen(text) == expected


@pytest.mark.parametrize("text", ["9187", ":9187", "host:port", "host:70000"])
def test_split_listen_rejects(text):
    with pytest.raises(ValueError):
        split_listen(text)


def test_body_is_json_with_trailing_newline(server):
    control, _ = server
    raw = httpx.get(f"http://{control.address}/status").content
    assert raw.endswith(b"\n")
    json.loads(raw)


def test_state_files_are_written_0600_whatever_the_umask(tmp_path):
    previous = os.umask(0)
    try:
        token = ensure_token(tmp_path)
        write_info(
            tmp_path, DaemonInfo(pid=1, address="127.0.0.1:9", config_path="", started_at="")
        )
    finally:
        os.umask(previous)
    for name in ("control.token", "daemon.json"):
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600, name
    assert read_token(tmp_path) == token


@pytest.mark.parametrize("name", ["daemon.json", "control.token"])
def test_a_state_file_others_can_write_is_not_trusted(tmp_path, name):
    ensure_token(tmp_path)
    write_info(
        tmp_path, DaemonInfo(pid=os.getpid(), address="127.0.0.1:9", config_path="", started_at="")
    )
    path = tmp_path / name
    path.chmod(0o620)
    reader = find_info if name == "daemon.json" else read_token
    with pytest.raises(UntrustedStateFile, match=f"{path} is writable by group"):
        reader(tmp_path)
    path.unlink()
    path.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(UntrustedStateFile, match="symbolic link"):
        reader(tmp_path)


@pytest.mark.parametrize(
    ("listen", "host", "allowed"),
    [
        ("127.0.0.1", "127.0.0.1:9187", True),
        ("127.0.0.1", "localhost", True),
        ("127.0.0.1", "[::1]:9187", True),
        ("127.0.0.1", "LOCALHOST.:1", True),
        ("127.0.0.1", "attacker.example:9187", False),
        ("127.0.0.1", "192.168.1.9", False),
        ("::1", "[::1]", True),
        ("0.0.0.0", "192.168.1.9:9187", True),
        ("0.0.0.0", "attacker.example", False),
        ("ops.example", "ops.example:9187", True),
        ("ops.example", "ops.example.attacker.example", False),
    ],
)
def test_host_names(listen, host, allowed):
    assert HostNames(listen).allows(host) is allowed


def test_the_connection_budget_is_a_share_of_the_file_limit():
    assert connection_limit(256) == 64
    assert connection_limit(1024) == 100
    assert connection_limit(20) == 5


def test_status_of_a_daemon_whose_status_fails_is_a_message_not_a_traceback(tmp_path):
    class Broken(Api):
        def status(self):
            raise RuntimeError("the status broke")

    control = ControlServer("127.0.0.1:0", Broken(), token="s3cret-token-value")
    try:
        info = DaemonInfo(
            pid=os.getpid(), address=control.address, config_path="/x", started_at="now"
        )
        write_info(tmp_path, info)
        done = run_cli("status", "--state-dir", str(tmp_path))
    finally:
        control.stop()
    assert done.returncode == 1, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    assert "its /status did not answer" in done.stderr, done.stderr
