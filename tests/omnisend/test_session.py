"""The HTTP sessions against real loopback servers: keep-alive, threads, failures, the factory.

A small scripted ``http.server`` plays the server for what the emulator
cannot do on demand (count connections, hang, hang up mid-answer or while
idle); the emulator checks the default session end to end under the client.
"""

from __future__ import annotations

import json
import random
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import pytest

from omnisync import __version__
from omnisync.clock import ScaledClock
from omnisync.emulator import Emulator
from omnisync.omnisend.client import OmnisendClient
from omnisync.omnisend.errors import TransportError, Unauthorized
from omnisync.omnisend.pacing import BrandLimiter
from omnisync.omnisend.plainhttp import PlainHttpSession
from omnisync.omnisend.retry import RetryPolicy
from omnisync.omnisend.session import (
    AnswerHeaders,
    HttpAnswer,
    HttpxSession,
    SessionTransportError,
    open_session,
    proxy_applies,
)
from tests.omnisend.conftest import people

API_KEY = "omni-session-key-SECRET-77"
HEADERS = {
    "Authorization": f"Omnisend-API-Key {API_KEY}",
    "Omnisend-Version": "2026-03-15",
    "Content-Type": "application/json",
    "Accept": "application/json",
    "User-Agent": f"omnisync/{__version__}",
}


@dataclass(frozen=True)
class Seen:
    """One request as the scripted server read it."""

    method: str
    target: str
    headers: dict[str, str]  # lower-cased names
    body: bytes
    connection: int  # 1 for the server's first connection, 2 for the next...
    on_connection: int  # 1 for a connection's first request


class ScriptedHandler(BaseHTTPRequestHandler):
    """Answers by the path's last segment:

    ``hang`` never answers (until the test ends); ``drop`` hangs up without
    answering; ``stale`` does so unless it is its connection's first request
    (a kept-alive connection the server closed); ``cut`` hangs up mid-body;
    ``hangup`` answers, then closes without saying so (an idle close);
    ``close`` answers with ``Connection: close``; anything else answers 200
    with ``{"connection": n}`` and a cookie nobody should send back.
    """

    protocol_version = "HTTP/1.1"
    timeout = 10  # an idle connection's thread gives up eventually
    server: ScriptedServer

    def setup(self) -> None:
        super().setup()
        # The status line and the body go out in separate writes: no Nagle delay between.
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.connection_number = self.server.count_connection()
        self.served = 0

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self.served += 1
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.server.record(
            Seen(
                method=self.command,
                target=self.path,
                headers={name.lower(): value for name, value in self.headers.items()},
                body=body,
                connection=self.connection_number,
                on_connection=self.served,
            )
        )
        behaviour = urlsplit(self.path).path.rsplit("/", 1)[-1]
        if behaviour == "hang":
            self.server.release.wait(10)
            self.close_connection = True
        elif behaviour == "drop" or (behaviour == "stale" and self.served > 1):
            self.close_connection = True
        elif behaviour == "cut":
            self.send_response(200)
            self.send_header("Content-Length", "100")
            self.end_headers()
            self.wfile.write(b'{"connection": ')
            self.close_connection = True
        else:
            answer = json.dumps({"connection": self.connection_number}).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(answer)))
            self.send_header("Set-Cookie", "session=abc; Path=/")
            self.send_header("X-Connection", str(self.connection_number))
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

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), ScriptedHandler)
        self.connections = 0
        self.seen: list[Seen] = []
        self.release = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.server_address[1]}/api"

    def count_connection(self) -> int:
        with self._lock:
            self.connections += 1
            return self.connections

    def record(self, seen: Seen) -> None:
        with self._lock:
            self.seen.append(seen)

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
def session(server: ScriptedServer) -> Iterator[PlainHttpSession]:
    plain = PlainHttpSession(server.base_url, headers=HEADERS, timeout=5.0)
    yield plain
    plain.close()


def connection_of(answer: HttpAnswer) -> int:
    number: int = answer.json()["connection"]
    return number


# -- keep-alive, headers, encoding -----------------------------------------------


def test_requests_reuse_one_kept_alive_connection(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    answers = [
        session.send("GET", "batches", params={"limit": "250"}),
        session.send("POST", "batches", content=b'{"items": []}'),
        session.send("DELETE", "contacts/tags", content=b"{}"),
        session.send("GET", "batches/b-1/items"),
        session.send("GET", "contacts"),
    ]
    assert [answer.status_code for answer in answers] == [200] * 5
    assert {connection_of(answer) for answer in answers} == {1}
    assert server.connections == 1


def test_every_request_carries_the_clients_headers_and_never_a_cookie(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    body = b'{"tag": "vip", "emails": ["a@example.com"]}'
    session.send("POST", "contacts/tags", content=body)
    answer = session.send("GET", "contacts")
    posted, got = server.seen
    for seen in (posted, got):
        for name, value in HEADERS.items():
            assert seen.headers[name.lower()] == value
        assert "cookie" not in seen.headers  # the answers set one
    assert posted.body == body and posted.headers["content-length"] == str(len(body))
    assert got.body == b"" and "content-length" not in got.headers
    # The answer's headers, read whatever the case.
    assert answer.headers.get("x-connection") == answer.headers.get("X-CONNECTION") == "1"
    assert answer.headers.get("Retry-After") is None


def test_params_are_url_encoded_and_paths_quoted_once(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    params = {"email": "a+b@example.com", "limit": "1", "note": "x y&z=ü"}
    session.send("GET", "contacts", params=params)
    session.send("GET", "batches/b%2F1/items")  # already quoted: left as it is
    session.send("GET", "batches/ä x")
    session.send("GET", "batches", params={})
    targets = server.targets()
    assert targets[0] == "/api/contacts?email=a%2Bb%40example.com&limit=1&note=x+y%26z%3D%C3%BC"
    assert dict(parse_qsl(urlsplit(targets[0]).query)) == params
    assert targets[1:] == ["/api/batches/b%2F1/items", "/api/batches/%C3%A4%20x", "/api/batches"]


def test_both_sessions_send_the_same_client_headers(server: ScriptedServer) -> None:
    httpx_session = HttpxSession(
        server.base_url, headers=HEADERS, transport=httpx.HTTPTransport(), timeout=5.0
    )
    plain = PlainHttpSession(server.base_url, headers=HEADERS, timeout=5.0)
    try:
        for each in (httpx_session, plain):
            answer = each.send("POST", "batches", params={"a": "b c"}, content=b"{}")
            assert answer.status_code == 200 and answer.headers.get("Set-Cookie")
            each.send("GET", "batches")  # a cookie jar would send the cookie now
    finally:
        httpx_session.close()
        plain.close()
    via_httpx, _, via_plain, _ = server.seen
    assert via_httpx.target == via_plain.target == "/api/batches?a=b+c"
    assert via_httpx.body == via_plain.body == b"{}"
    for name in [*(name.lower() for name in HEADERS), "content-length", "host"]:
        assert via_httpx.headers[name] == via_plain.headers[name]
    assert not any("cookie" in seen.headers for seen in server.seen)


def test_threads_share_a_session(server: ScriptedServer, session: PlainHttpSession) -> None:
    threads, rounds = 6, 20
    failures: list[BaseException] = []
    connections: set[int] = set()

    def work(thread: int) -> None:
        try:
            for index in range(rounds):
                answer = session.send("GET", "batches", params={"t": str(thread), "i": str(index)})
                assert answer.status_code == 200
                connections.add(connection_of(answer))
        except BaseException as error:
            failures.append(error)

    workers = [threading.Thread(target=work, args=(number,)) for number in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    assert failures == []
    expected = {f"/api/batches?t={t}&i={i}" for t in range(threads) for i in range(rounds)}
    assert sorted(server.targets()) == sorted(expected)  # each sent once
    # A connection serves one thread at a time, so no more than there were threads.
    assert server.connections == len(connections) <= threads
    # Each connection's requests arrived one after the other, none interleaved.
    for number in connections:
        order = [seen.on_connection for seen in server.seen if seen.connection == number]
        assert sorted(order) == list(range(1, len(order) + 1))


# -- connections the server closes -----------------------------------------------


def test_a_connection_the_server_closed_while_idle_is_replaced(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    assert connection_of(session.send("GET", "hangup")) == 1
    assert connection_of(session.send("GET", "batches")) == 2
    assert connection_of(session.send("GET", "batches")) == 2
    assert server.connections == 2


def test_a_reused_connection_closed_before_any_answer_is_sent_once_more_when_safe(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    session.send("GET", "batches")
    answer = session.send("GET", "stale")  # dropped on connection 1
    assert answer.status_code == 200 and connection_of(answer) == 2
    assert [(seen.target, seen.connection) for seen in server.seen] == [
        ("/api/batches", 1),
        ("/api/stale", 1),
        ("/api/stale", 2),
    ]


def test_a_post_the_server_may_have_acted_on_is_left_to_the_retry_policy(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    session.send("GET", "batches")
    with pytest.raises(SessionTransportError) as caught:
        session.send("POST", "stale", content=b"{}")  # dropped on connection 1, after the request
    assert "RemoteDisconnected" in caught.value.reason
    assert server.targets() == ["/api/batches", "/api/stale"]  # not sent again


def test_a_new_connection_closed_without_an_answer_is_a_transport_error(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    with pytest.raises(SessionTransportError) as caught:
        session.send("POST", "drop", content=b"{}")
    assert "RemoteDisconnected" in caught.value.reason
    assert server.targets() == ["/api/drop"]  # not sent again
    assert session.send("GET", "batches").status_code == 200


def test_an_answer_cut_short_is_a_transport_error_and_never_resent(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    session.send("GET", "batches")
    with pytest.raises(SessionTransportError) as caught:
        session.send("POST", "cut", content=b"{}")  # on the reused connection
    assert "IncompleteRead" in caught.value.reason
    assert server.targets() == ["/api/batches", "/api/cut"]
    # The broken connection is gone: the next request opens a new one.
    assert connection_of(session.send("GET", "batches")) == 2


def test_an_answer_saying_connection_close_is_honoured(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    assert connection_of(session.send("GET", "close")) == 1
    assert connection_of(session.send("GET", "batches")) == 2
    assert connection_of(session.send("GET", "batches")) == 2


def test_a_server_that_never_answers_times_out(server: ScriptedServer) -> None:
    session = PlainHttpSession(server.base_url, headers=HEADERS, timeout=0.3)
    try:
        with pytest.raises(SessionTransportError) as caught:
            session.send("GET", "hang")
    finally:
        session.close()
    assert "timed out" in caught.value.reason
    assert API_KEY not in caught.value.reason


def test_a_refused_connection_is_a_transport_error() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    # Nothing listens on the port now.
    session = PlainHttpSession(f"http://127.0.0.1:{port}/api", headers=HEADERS, timeout=2.0)
    with pytest.raises(SessionTransportError) as caught:
        session.send("GET", "batches")
    assert "ConnectionRefusedError" in caught.value.reason
    assert API_KEY not in str(caught.value)


def test_a_closed_session_sends_nothing_and_closes_what_comes_back(
    server: ScriptedServer, session: PlainHttpSession
) -> None:
    session.send("GET", "batches")
    session.close()
    with pytest.raises(RuntimeError, match="closed"):
        session.send("GET", "batches")
    session.close()  # twice is fine


# -- the answer and the httpx session -------------------------------------------


def test_an_answer_reads_json_and_refuses_what_is_not() -> None:
    headers = AnswerHeaders([("Retry-After", "3"), ("Vary", "a"), ("vary", "b")])
    answer = HttpAnswer(status_code=200, headers=headers, content=b'{"a": [1, 2]}')
    assert answer.json() == {"a": [1, 2]}
    assert headers.get("retry-after") == "3" and headers.get("VARY") == "a, b"
    with pytest.raises(ValueError):
        HttpAnswer(status_code=200, headers=headers, content=b"<html>").json()


def test_the_httpx_session_raises_the_sessions_transport_error() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    session = HttpxSession(
        "https://omnisend.test/api",
        headers=HEADERS,
        transport=httpx.MockTransport(refuse),
        timeout=1.0,
    )
    with pytest.raises(SessionTransportError) as caught:
        session.send("GET", "batches")
    assert caught.value.reason == "ConnectError: connection refused"


# -- choosing the session --------------------------------------------------------


def never(host: str) -> bool:
    return False


@pytest.mark.parametrize(
    ("base_url", "proxies", "bypassed", "proxied"),
    [
        ("https://api.omnisend.com/api", {}, False, False),
        ("https://api.omnisend.com/api", {"https": "http://proxy:3128"}, False, True),
        ("https://api.omnisend.com/api", {"all": "socks5://proxy:1080"}, False, True),
        ("https://api.omnisend.com/api", {"http": "http://proxy:3128"}, False, False),
        ("http://127.0.0.1:8080/api", {"http": "http://proxy:3128"}, False, True),
        ("https://api.omnisend.com/api", {"https": "http://proxy:3128"}, True, False),
    ],
)
def test_a_proxy_applies_by_scheme_unless_bypassed(
    base_url: str, proxies: dict[str, str], bypassed: bool, proxied: bool
) -> None:
    hosts: list[str] = []

    def bypass(host: str) -> bool:
        hosts.append(host)
        return bypassed

    assert proxy_applies(base_url, proxies=proxies, bypass=bypass) is proxied
    assert hosts in ([], [urlsplit(base_url).hostname])


def test_the_factory_picks_httpx_for_a_transport_or_a_proxy_and_plain_otherwise() -> None:
    base_url = "https://api.omnisend.com/api"
    proxy = {"https": "http://proxy:3128"}

    def choose(**options: Any) -> type:
        session = open_session(base_url, headers=HEADERS, timeout=1.0, **options)
        session.close()
        return type(session)

    assert choose(transport=None, proxies={}, bypass=never) is PlainHttpSession
    assert choose(transport=None, proxies=proxy, bypass=never) is HttpxSession
    assert choose(transport=None, proxies=proxy, bypass=lambda host: True) is PlainHttpSession
    transport = httpx.MockTransport(lambda request: httpx.Response(200))
    assert choose(transport=transport, proxies={}, bypass=never) is HttpxSession


# -- the default session under the client, against the emulator --------------------


@pytest.fixture
def emulator() -> Iterator[Emulator]:
    running = Emulator(api_keys=(API_KEY,), clock=ScaledClock(100.0), rate_limits=False).start()
    yield running
    running.stop()


def plain_client(
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


def test_the_client_works_end_to_end_on_the_default_session(emulator: Emulator) -> None:
    with plain_client(emulator) as client:
        writes = people(50, consent=True)
        emails = [write.email for write in writes]
        batch_id = client.create_batch(writes)
        [outcome] = client.wait_for_batches({batch_id: emails}, poll_interval=0.5)
        assert outcome.status == "finished" and outcome.accepted == frozenset(emails)
        client.add_tag("vip", emails)
        contact = client.get_contact(emails[3])
        assert contact is not None and contact["email"] == emails[3]
        assert client.get_contact("nobody@example.com") is None
    assert {record.status for record in emulator.request_log()} <= {200, 201, 202}


def test_problem_documents_and_retry_after_are_read_from_the_default_session(
    emulator: Emulator,
) -> None:
    with (
        plain_client(emulator, api_key="omni-wrong-key-SECRET") as client,
        pytest.raises(Unauthorized) as caught,
    ):
        client.add_tag("vip", ["a@example.com"])
    assert "urn:omnisend:request:" in str(caught.value)  # the trace id, from the body
    emulator.set_faults(force_429_count=2, force_429_retry_after=1)
    with plain_client(emulator) as client:
        client.add_tag("vip", ["a@example.com"])  # waits out the 429s, then succeeds
    assert [record.status for record in emulator.request_log()][-3:] == [429, 429, 202]


def test_dropped_connections_end_in_a_transport_error_after_the_policys_attempts(
    emulator: Emulator,
) -> None:
    emulator.set_faults(drop_rate=1.0)
    with (
        plain_client(emulator, retry_policy=RetryPolicy(max_attempts=3)) as client,
        pytest.raises(TransportError, match="after 3 attempt") as caught,
    ):
        client.add_tag("vip", ["a@example.com"])
    assert API_KEY not in str(caught.value)
    # Each attempt was a request on a new connection (a dropped one is never reused),
    # so none was sent twice by the session itself.
    assert [record.status for record in emulator.request_log()] == [None, None, None]
