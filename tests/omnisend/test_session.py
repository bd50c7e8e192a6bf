"""The client's one HTTP path (a pooled httpx.Client) over real loopback sockets.

A small scripted ``http.server`` plays the server for what the emulator cannot
do on demand (count connections, hang, hang up mid-answer or while idle, act
as a proxy, speak TLS with a certificate of the test's own); the emulator
checks the default transport end to end under the client. Every client here
runs on a FakeClock: retries and pacing never sleep for real.
"""

from __future__ import annotations

import json
import random
import shutil
import socket
import ssl
import subprocess
import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest

from omnisync import __version__
from omnisync.clock import FakeClock, ScaledClock
from omnisync.emulator import Emulator
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import API_VERSION, ApiError, TransportError
from omnisync.omnisend.pacing import BrandLimiter
from omnisync.omnisend.retry import RetryPolicy
from omnisync.omnisend.transport import open_http
from tests.omnisend.conftest import encoded, people

API_KEY = "omni-session-key-SECRET-77"
HEADERS = {
    "Authorization": f"Omnisend-API-Key {API_KEY}",
    "Omnisend-Version": "2026-03-15",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": f"omnisync/{__version__}",
}
ONCE = RetryPolicy(max_attempts=1)


@dataclass(frozen=True)
class Seen:
    """One request as the scripted server read it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    connection: int  # 1 for the server's first connection, 2 for the next...


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers each request with the next behaviour of the server's plan ("ok" once it
    is used up):

    ``hang`` never answers (until the test ends); ``drop`` hangs up without
    answering; ``cut`` hangs up mid-body; ``hangup`` answers, then closes
    without saying so (an idle close); ``close`` answers with
    ``Connection: close``; ``ok`` answers 200 with an empty contacts list and
    the connection's number.
    """

    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle connection's thread gives up eventually
    server: ScriptedServer

    def setup(self) -> None:
        super().setup()
        self.connection_number = self.server.count_connection()

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        behaviour = self.server.record(
            Seen(
                method=self.command,
                target=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                connection=self.connection_number,
            )
        )
        if behaviour == "hang":
            self.server.release.wait(10)
            self.close_connection = True
        elif behaviour == "drop":
            self.close_connection = True
        elif behaviour == "cut":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"contacts": ')
            self.close_connection = True
        else:
            answer = json.dumps({"contacts": [], "connection": self.connection_number}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            if behaviour == "close":
                self.send_header("Connection", "close")
            self.end_headers()
            self.wfile.write(answer)
            if behaviour == "hangup":
                self.close_connection = True

    do_POST = do_GET
    do_DELETE = do_GET


class ScriptedServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, tls: ssl.SSLContext | None = None) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True)
        self.scheme = "https" if tls is not None else "http"
        self.connections = 0
        self.seen: list[Seen] = []
        self.plan: list[str] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://127.0.0.1:{self.server_address[1]}/api"

    def count_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def record(self, seen: Seen) -> str:
        """Keep ``seen``; return how to answer it."""
        with self._lock:
            self.seen.append(seen)
            return self.plan.pop(0) if self.plan else "ok"

    def targets(self) -> list[str]:
        with self._lock:
            return [seen.target for seen in self.seen]

    def stop(self) -> None:
        self.release.set()
        self.shutdown()
        self.server_close()


@pytest.fixture
def server() -> Iterator[ScriptedServer]:
    scripted = ScriptedServer()
    yield scripted
    scripted.stop()


@pytest.fixture
def clients() -> Iterator[list[OmnisendClient]]:
    opened: list[OmnisendClient] = []
    yield opened
    for client in opened:
        client.close()


@pytest.fixture(autouse=True)
def no_proxy_from_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    """The tests' own environment decides about proxies and certificate authorities."""
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "SSL_CERT_FILE", "SSL_CERT_DIR"):
        monkeypatch.delenv(name, raising=False)
        monkeypatch.delenv(name.lower(), raising=False)
    monkeypatch.setenv("NO_PROXY", "")
    monkeypatch.setenv("no_proxy", "")


def open_client(
    clients: list[OmnisendClient],
    base_url: str,
    *,
    retry_policy: RetryPolicy | None = None,
    timeout: float = 5.0,
) -> OmnisendClient:
    clock = FakeClock()
    client = OmnisendClient(
        base_url,
        API_KEY,
        limiter=BrandLimiter(400, 60, clock=clock),
        clock=clock,
        timeout=timeout,
        retry_policy=retry_policy,
        random=random.Random(3),
    )
    clients.append(client)
    return client


# -- keep-alive, headers, encoding -----------------------------------------------


def test_requests_reuse_one_kept_alive_connection(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url)
    client.add_tag("vip", ["a@example.com"])
    client.remove_tag("vip", ["a@example.com"])
    for index in range(3):
        assert client.get_contact(f"p{index}@example.com") is None
    assert [seen.connection for seen in server.seen] == [1] * 5
    assert server.connections == 1


def test_every_request_carries_the_clients_headers(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url)
    client.add_tag("vip", ["a@example.com"])
    client.get_contact("a+b@example.com")
    posted, got = server.seen
    for seen in (posted, got):
        for name, value in HEADERS.items():
            assert seen.headers[name.lower()] == value
    assert posted.target == "/api/contacts/tags"
    assert json.loads(posted.body) == {"emails": ["a@example.com"], "tags": ["vip"]}
    assert posted.headers["content-length"] == str(len(posted.body))
    assert got.body == b""
    assert got.target == "/api/contacts?email=a%2Bb%40example.com&limit=1"
    assert dict(parse_qsl(urlsplit(got.target).query)) == {
        "email": "a+b@example.com",
        "limit": "1",
    }


def test_threads_share_the_clients_pool(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url)
    threads, rounds = 6, 10
    failures: list[BaseException] = []

    def work(thread: int) -> None:
        try:
            for index in range(rounds):
                assert client.get_contact(f"t{thread}-{index}@example.com") is None
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    expected = {
        f"/api/contacts?email=t{t}-{i}%40example.com&limit=1"
        for t in range(threads)
        for i in range(rounds)
    }
    assert sorted(server.targets()) == sorted(expected)  # each sent once
    # A connection serves one request at a time: no more connections than threads.
    assert server.connections <= threads


# -- connections the server closes -----------------------------------------------


def test_a_connection_the_server_closed_while_idle_or_said_so_is_replaced(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url)
    server.plan = ["hangup", "ok", "close", "ok", "ok"]
    for index in range(5):
        client.get_contact(f"p{index}@example.com")
    assert [seen.connection for seen in server.seen] == [1, 2, 2, 3, 3]


def test_a_request_dropped_without_an_answer_is_retried_by_the_policy_alone(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url, retry_policy=RetryPolicy(max_attempts=2))
    server.plan = ["drop"]
    client.add_tag("vip", ["a@example.com"])  # dropped, then sent again by the policy
    assert server.targets() == ["/api/contacts/tags"] * 2
    server.plan = ["drop", "drop"]
    with pytest.raises(TransportError, match="after 2 attempt") as caught:
        client.add_tag("vip", ["a@example.com"])
    assert "RemoteProtocolError" in caught.value.reason
    assert API_KEY not in str(caught.value)
    assert len(server.seen) == 4  # httpx itself never sent anything twice


def test_an_answer_cut_short_is_a_transport_error_and_its_connection_is_not_reused(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url, retry_policy=ONCE)
    client.get_contact("a@example.com")
    server.plan = ["cut"]
    with pytest.raises(TransportError) as caught:
        client.get_contact("a@example.com")
    assert "RemoteProtocolError" in caught.value.reason
    client.get_contact("a@example.com")
    assert [seen.connection for seen in server.seen] == [1, 1, 2]


def test_a_server_that_never_answers_times_out(
    server: ScriptedServer, clients: list[OmnisendClient]
) -> None:
    client = open_client(clients, server.base_url, retry_policy=ONCE, timeout=0.3)
    server.plan = ["hang"]
    with pytest.raises(TransportError) as caught:
        client.get_contact("a@example.com")
    assert caught.value.reason.startswith("ReadTimeout")
    assert API_KEY not in str(caught.value)


def test_a_refused_connection_is_a_transport_error(clients: list[OmnisendClient]) -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    client = open_client(clients, f"http://127.0.0.1:{port}/api", retry_policy=ONCE)
    with pytest.raises(TransportError) as caught:
        client.add_tag("vip", ["a@example.com"])
    assert caught.value.reason.startswith("ConnectError")
    assert API_KEY not in str(caught.value)


# -- the environment: proxies and certificate authorities ----------------------------


def test_a_proxy_from_the_environment_carries_the_requests(
    server: ScriptedServer, clients: list[OmnisendClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", f"http://127.0.0.1:{server.server_address[1]}")
    client = open_client(clients, "http://omnisend.invalid/api")
    assert client.get_contact("a@example.com") is None
    [seen] = server.seen  # the scripted server played the proxy: absolute-form target
    assert seen.target == "http://omnisend.invalid/api/contacts?email=a%40example.com&limit=1"
    assert seen.headers["host"] == "omnisend.invalid"


def test_no_proxy_sends_the_request_directly(
    server: ScriptedServer, clients: list[OmnisendClient], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("HTTP_PROXY", "http://127.0.0.1:9")  # nothing listens there
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    monkeypatch.setenv("no_proxy", "127.0.0.1")  # the lower-case name wins
    client = open_client(clients, server.base_url)
    assert client.get_contact("a@example.com") is None
    assert server.targets() == ["/api/contacts?email=a%40example.com&limit=1"]


@pytest.fixture(scope="module")
def certificate(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key, valid a day."""
    if shutil.which("openssl") is None:
        pytest.skip("the openssl command is not installed")
    directory = tmp_path_factory.mktemp("tls")
    certificate, key = directory / "loopback.pem", directory / "loopback.key"
    command = [
        "openssl", "req", "-x509", "-nodes", "-days", "1",
        "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
        "-subj", "/CN=loopback", "-addext", "subjectAltName=IP:127.0.0.1",
        "-keyout", str(key), "-out", str(certificate),
    ]  # fmt: skip
    subprocess.run(command, check=True, capture_output=True)
    return certificate, key


@pytest.fixture
def https_server(certificate: tuple[Path, Path]) -> Iterator[ScriptedServer]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(*certificate)
    scripted = ScriptedServer(tls=context)
    yield scripted
    scripted.stop()


def test_https_trusts_the_certificate_authorities_named_by_ssl_cert_file(
    https_server: ScriptedServer,
    certificate: tuple[Path, Path],
    clients: list[OmnisendClient],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    untrusting = open_client(clients, https_server.base_url, retry_policy=ONCE)
    with pytest.raises(TransportError, match="CERTIFICATE_VERIFY_FAILED"):
        untrusting.get_contact("a@example.com")
    monkeypatch.setenv("SSL_CERT_FILE", str(certificate[0]))
    trusting = open_client(clients, https_server.base_url)
    assert trusting.get_contact("a@example.com") is None
    assert trusting.get_contact("b@example.com") is None
    # The refused handshake never reached the server's handler; both requests shared one
    # kept-alive TLS connection.
    assert [seen.connection for seen in https_server.seen] == [1, 1]


# -- the default transport under the client, against the emulator --------------------


@pytest.fixture
def emulator(start_emulator: Callable[..., Emulator]) -> Emulator:
    return start_emulator(api_keys=(API_KEY,), clock=ScaledClock(100.0), rate_limits=False)


def emulator_client(
    emulator: Emulator, *, api_key: str = API_KEY, retry_policy: RetryPolicy | None = None
) -> OmnisendClient:
    clock = emulator.clock
    return OmnisendClient(
        emulator.base_url,
        api_key,
        limiter=BrandLimiter(400, 60, clock=clock),
        clock=clock,
        retry_policy=retry_policy,
        random=random.Random(3),
    )


def test_the_client_works_end_to_end_on_the_default_transport(emulator: Emulator) -> None:
    with emulator_client(emulator) as client:
        writes = people(50, consent=True)
        emails = [write.email for write in writes]
        batch_id = client.create_batch(encoded(writes))
        [outcome] = client.wait_for_batches({batch_id: emails}, poll_interval=0.5)
        assert outcome.status == "finished" and outcome.accepted == frozenset(emails)
        client.add_tag("vip", emails)
        contact = client.get_contact(emails[3])
        assert contact is not None and contact["email"] == emails[3]
        assert client.get_contact("nobody@example.com") is None
    assert {record.status for record in emulator.request_log()} <= {200, 201, 202}


def test_problem_documents_and_retry_after_are_read_on_the_default_transport(
    emulator: Emulator,
) -> None:
    with (
        emulator_client(emulator, api_key="omni-wrong-key-SECRET") as client,
        pytest.raises(ApiError, match="answered 401") as caught,
    ):
        client.add_tag("vip", ["a@example.com"])
    assert "urn:omnisend:request:" in str(caught.value)  # the trace id, from the body
    emulator.set_faults(force_429_count=2, force_429_retry_after=1)
    with emulator_client(emulator) as client:
        client.add_tag("vip", ["a@example.com"])  # waits out the 429s, then succeeds
    assert [record.status for record in emulator.request_log()][-3:] == [429, 429, 202]


def test_dropped_connections_end_in_a_transport_error_after_the_policys_attempts(
    emulator: Emulator,
) -> None:
    emulator.set_faults(drop_rate=1.0)
    with (
        emulator_client(emulator, retry_policy=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(TransportError, match="after 3 attempt") as caught,
    ):
        client.add_tag("vip", ["a@example.com"])
    assert API_KEY not in str(caught.value)
    # Each attempt was one request: httpx never sent a dropped one again by itself.
    assert [record.status for record in emulator.request_log()] == [None, None, None]


class _LeaseGone(Exception):
    pass


def test_the_request_gate_is_asked_again_just_before_the_request_is_written(start_emulator):
    """A gate that says no at the last moment (after the pool handed out a connection)
    stops the request unsent: the server never sees it, and the error is the gate's."""
    emulator = start_emulator(api_keys=("gate-key",))
    answers = iter([None, _LeaseGone("lease ran out while waiting")])

    def gate() -> None:
        answer = next(answers)
        if answer is not None:
            raise answer

    client = open_http(
        emulator.base_url,
        headers={"Authorization": "Omnisend-API-Key gate-key", "Omnisend-Version": API_VERSION},
        transport=None,
        timeout=5,
        request_gate=gate,
    )
    with client, pytest.raises(_LeaseGone):
        client.get("contacts")
    assert emulator.request_log() == []
