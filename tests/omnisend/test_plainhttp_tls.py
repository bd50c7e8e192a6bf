"""The default session over HTTPS, against a loopback server with a self-signed certificate.

The certificate is made for the test (``cryptography`` when the venv has it,
else the ``openssl`` command); the session trusts it through the
``ssl.SSLContext`` it is given, and trusts nothing else.
"""

from __future__ import annotations

import shutil
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from omnisync.omnisend.plainhttp import PlainHttpSession
from omnisync.omnisend.session import SessionTransportError
from tests.omnisend.rawserver import RawRequest, RawServer, Reply, answer, reply
from tests.omnisend.test_session import API_KEY, HEADERS


def self_signed(directory: Path, name: str, *, alternative_names: str) -> tuple[Path, Path]:
    """A certificate and its key, valid a day, for ``alternative_names`` (openssl's syntax)."""
    certificate, key = directory / f"{name}.pem", directory / f"{name}.key"
    try:
        make_with_cryptography(certificate, key, alternative_names)
    except ImportError:
        if shutil.which("openssl") is None:
            pytest.skip("neither the cryptography package nor the openssl command is here")
        command = [
            "openssl", "req", "-x509", "-nodes", "-days", "1",
            "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
            "-subj", f"/CN={name}", "-addext", f"subjectAltName={alternative_names}",
            "-keyout", str(key), "-out", str(certificate),
        ]  # fmt: skip
        subprocess.run(command, check=True, capture_output=True)
    return certificate, key


def make_with_cryptography(certificate: Path, key: Path, alternative_names: str) -> None:
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    names: list[x509.GeneralName] = []
    for entry in alternative_names.split(","):
        kind, _, value = entry.partition(":")
        if kind == "IP":
            names.append(x509.IPAddress(ipaddress.ip_address(value)))
        else:
            names.append(x509.DNSName(value))
    private = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, certificate.stem)])
    now = datetime.datetime.now(datetime.UTC)
    built = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(names), critical=False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(private, hashes.SHA256())
    )
    certificate.write_bytes(built.public_bytes(serialization.Encoding.PEM))
    key.write_bytes(
        private.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    directory = tmp_path_factory.mktemp("tls")
    return {
        "loopback": self_signed(directory, "loopback", alternative_names="IP:127.0.0.1"),
        "elsewhere": self_signed(directory, "elsewhere", alternative_names="DNS:elsewhere.test"),
    }


def server_context(certificate: Path, key: Path) -> ssl.SSLContext:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(certificate, key)
    return context


def trusting(certificate: Path) -> ssl.SSLContext:
    """A client context that trusts ``certificate`` and nothing else."""
    return ssl.create_default_context(cafile=str(certificate))


def echo_connection(request: RawRequest) -> Reply:
    return reply(answer(b'{"connection": %d}' % request.connection))


@pytest.fixture
def https_server(certificates: dict[str, tuple[Path, Path]]) -> Iterator[RawServer]:
    server = RawServer(echo_connection, ssl_context=server_context(*certificates["loopback"]))
    yield server
    server.stop()


def test_requests_go_over_https_on_one_kept_alive_connection(
    https_server: RawServer, certificates: dict[str, tuple[Path, Path]]
) -> None:
    certificate, _ = certificates["loopback"]
    session = PlainHttpSession(
        https_server.base_url, headers=HEADERS, timeout=5.0, ssl_context=trusting(certificate)
    )
    try:
        posted = session.send("POST", "batches", content=b'{"items": []}')
        got = session.send("GET", "batches", params={"limit": "1"})
    finally:
        session.close()
    assert posted.json() == got.json() == {"connection": 1}
    first, second = https_server.seen()
    assert first.request_line == "POST /api/batches HTTP/1.1" and first.body == b'{"items": []}'
    assert first.header("Authorization") == HEADERS["Authorization"]
    assert second.request_line == "GET /api/batches?limit=1 HTTP/1.1"
    assert https_server.connections == 1 and https_server.handshake_failures == 0


def test_an_untrusted_certificate_is_a_transport_error(https_server: RawServer) -> None:
    # The system's authorities: none of them signed the test's certificate.
    session = PlainHttpSession(
        https_server.base_url,
        headers=HEADERS,
        timeout=5.0,
        ssl_context=ssl.create_default_context(),
    )
    try:
        with pytest.raises(SessionTransportError) as caught:
            session.send("GET", "batches")
    finally:
        session.close()
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reason
    assert API_KEY not in caught.value.reason
    assert https_server.seen() == []  # nothing of the request went out


def test_a_certificate_for_another_host_is_a_transport_error(
    certificates: dict[str, tuple[Path, Path]],
) -> None:
    # Trusted, but made out to elsewhere.test: the session checks the name it dialled.
    certificate, key = certificates["elsewhere"]
    server = RawServer(echo_connection, ssl_context=server_context(certificate, key))
    session = PlainHttpSession(
        server.base_url, headers=HEADERS, timeout=5.0, ssl_context=trusting(certificate)
    )
    try:
        with pytest.raises(SessionTransportError) as caught:
            session.send("GET", "batches")
    finally:
        session.close()
        server.stop()
    assert "CERTIFICATE_VERIFY_FAILED" in caught.value.reason
    assert "127.0.0.1" in caught.value.reason and server.seen() == []
