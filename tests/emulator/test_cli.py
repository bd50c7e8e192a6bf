"""``omnisync emulator`` as a real process: start, serve, stop on SIGTERM/SIGINT with exit 0."""

from __future__ import annotations

import re
import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest

from tests.openapi_contract import ValidatingTransport

LISTENING = re.compile(r"emulator listening on (http://127\.0\.0\.1:\d+/api)")


@contextmanager
def emulator_process(*arguments: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    process = subprocess.Popen(
        [sys.executable, "-m", "omnisync", "emulator", *arguments],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        match = LISTENING.fullmatch(line.strip())
        assert match, f"unexpected first line {line!r}"
        yield process, match.group(1)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait(timeout=10)


@pytest.mark.parametrize("stop_signal", [signal.SIGTERM, signal.SIGINT])
def test_the_command_serves_until_a_signal_and_exits_0(stop_signal: signal.Signals) -> None:
    arguments = ("--port", "0", "--api-key", "cli-secret-1", "--api-key", "cli-secret-2")
    with emulator_process(*arguments, "--time-scale", "60", "--batch-delay", "0") as (
        process,
        base_url,
    ):
        headers = {
            "Authorization": "Omnisend-API-Key cli-secret-2",
            "Omnisend-Version": "2026-03-15",
        }
        with httpx.Client(
            base_url=base_url, headers=headers, transport=ValidatingTransport()
        ) as client:
            body = {
                "identifiers": [
                    {"type": "email", "id": "c@example.com", "sendWelcomeMessage": False}
                ]
            }
            assert client.post("/contacts", json=body).status_code == 201
        inspected = httpx.get(
            base_url.removesuffix("/api") + "/_emulator/contacts", params={"brand": "brand-2"}
        )
        assert [c["email"] for c in inspected.json()["contacts"]] == ["c@example.com"]
        process.send_signal(stop_signal)
        output, errors = process.communicate(timeout=15)
    assert process.returncode == 0, errors
    assert "cli-secret" not in output + errors


def test_rate_limits_can_be_switched_off() -> None:
    with emulator_process("--api-key", "k", "--no-rate-limits", "--requests-per-minute", "1") as (
        process,
        base_url,
    ):
        headers = {"Authorization": "Omnisend-API-Key k", "Omnisend-Version": "2026-03-15"}
        with httpx.Client(
            base_url=base_url, headers=headers, transport=ValidatingTransport()
        ) as client:
            codes = {
                client.get("/batches", params={"endpoint": "contacts"}).status_code
                for _ in range(5)
            }
        assert codes == {200}
        process.terminate()
        assert process.wait(timeout=15) == 0


@pytest.mark.parametrize(
    ("arguments", "message"),
    [
        (("--host", "0.0.0.0", "--api-key", "k"), "pass --allow-remote"),
        (("--api-key", "k", "--port", "70000"), "--port"),
        (("--api-key", "k", "--time-scale", "0"), "--time-scale"),
        (("--api-key", " "), "--api-key"),
    ],
)
def test_bad_arguments_are_refused_with_exit_2(arguments: tuple[str, ...], message: str) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "omnisync", "emulator", *arguments],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""


def test_a_port_in_use_is_a_clear_error() -> None:
    with emulator_process("--api-key", "k") as (process, base_url):
        port = base_url.rsplit(":", 1)[1].split("/")[0]
        result = subprocess.run(
            [sys.executable, "-m", "omnisync", "emulator", "--api-key", "k", "--port", port],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        process.terminate()
        process.wait(timeout=15)
    assert result.returncode == 2
    assert "cannot listen" in result.stderr and "Traceback" not in result.stderr


def test_clients_that_give_up_leave_no_traceback() -> None:
    with emulator_process("--api-key", "k", "--time-scale", "10") as (process, base_url):
        root = base_url.removesuffix("/api")
        assert httpx.put(root + "/_emulator/faults", json={"latency": 3.0}).status_code == 200
        headers = {"Authorization": "Omnisend-API-Key k", "Omnisend-Version": "2026-03-15"}
        with pytest.raises(httpx.TimeoutException):
            httpx.get(
                base_url + "/batches",
                params={"endpoint": "contacts"},
                headers=headers,
                timeout=0.05,
            )
        httpx.put(root + "/_emulator/faults", json={"latency": 0.0})
        assert httpx.post(root + "/_emulator/drain", json={"timeout": 5}).status_code == 200
        # The abandoned answer is written after the client left.
        requests = httpx.get(root + "/_emulator/requests").json()["requests"]
        assert [r["status"] for r in requests] == [200]
        process.send_signal(signal.SIGTERM)
        _, errors = process.communicate(timeout=15)
    assert process.returncode == 0
    assert "Traceback" not in errors
