"""Resolving secret references; no value ever appears in an error."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from omnisync.config.loader import load_config
from omnisync.config.model import SecretRef
from omnisync.config.secrets import SecretUnavailable, check_secrets, resolve_secret
from tests.config.helpers import load_text, messages, replaced

KEY = "omnisend-key-9c1e52"


def unavailable(ref: SecretRef, **options: object) -> str:
    with pytest.raises(SecretUnavailable) as caught:
        resolve_secret(ref, **options)  # type: ignore[arg-type]
    message = str(caught.value)
    assert caught.value.reference == ref
    assert KEY not in message
    return message


def test_environment_variables() -> None:
    ref = SecretRef("env", "OMNISEND_API_KEY")

    assert resolve_secret(ref, environ={"OMNISEND_API_KEY": KEY}) == KEY
    assert resolve_secret(ref, environ={"OMNISEND_API_KEY": KEY + "\n"}) == KEY
    assert unavailable(ref, environ={}) == (
        "secret env:OMNISEND_API_KEY is unavailable:"
        " environment variable OMNISEND_API_KEY is not set"
    )
    assert unavailable(ref, environ={"OMNISEND_API_KEY": ""}).endswith("the value is empty")
    assert unavailable(ref, environ={"OMNISEND_API_KEY": f"{KEY}\n{KEY}"}).endswith(
        "the value spans more than one line"
    )


def test_files_lose_one_trailing_newline_only(tmp_path: Path) -> None:
    path = tmp_path / "key"
    ref = SecretRef("file", str(path))

    for content, expected in ((KEY, KEY), (KEY + "\n", KEY), (KEY + "\r\n", KEY)):
        path.write_text(content, encoding="utf-8", newline="")
        assert resolve_secret(ref, environ={}) == expected
    path.write_text(KEY + "\n\n", encoding="utf-8")
    assert unavailable(ref, environ={}).endswith("the value spans more than one line")


@pytest.mark.parametrize(
    ("content", "reason"),
    [
        (b"", "the value is empty"),
        (b"\n", "the value is empty"),
        (b"  \n", "the value is empty"),
        (b"\xff\xfe" + KEY.encode(), "is not UTF-8 text"),
        (KEY.encode() * 5000, "is larger than 64 KiB"),
    ],
)
def test_bad_secret_files(tmp_path: Path, content: bytes, reason: str) -> None:
    path = tmp_path / "key"
    path.write_bytes(content)
    assert unavailable(SecretRef("file", str(path)), environ={}).endswith(reason)


def test_missing_files_directories_and_fifos(tmp_path: Path) -> None:
    missing = SecretRef("file", str(tmp_path / "absent"))
    assert unavailable(missing, environ={}) == (
        f"secret file:{tmp_path}/absent is unavailable:"
        f" cannot read {tmp_path}/absent: No such file or directory"
    )
    assert unavailable(SecretRef("file", str(tmp_path)), environ={}).endswith("Is a directory")

    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # Nobody writes to it: reading must not block.
    assert unavailable(SecretRef("file", str(fifo)), environ={}).endswith("is not a regular file")


def test_systemd_credentials(tmp_path: Path) -> None:
    (tmp_path / "omnisend").write_text(KEY + "\n", encoding="utf-8")
    ref = SecretRef("credential", "omnisend")

    assert resolve_secret(ref, environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}) == KEY
    assert "$CREDENTIALS_DIRECTORY is not set" in unavailable(ref, environ={})
    assert "No such file or directory" in unavailable(
        SecretRef("credential", "other"), environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}
    )
    assert unavailable(
        SecretRef("credential", "../omnisend"), environ={"CREDENTIALS_DIRECTORY": str(tmp_path)}
    ).endswith("a credential name must not contain '/'")


def test_check_secrets_reports_each_reference_at_its_position(tmp_path: Path) -> None:
    text = replaced(
        "exports:\n",
        "  spare:\n    api_key: {file: spare.key}\nexports:\n",
    )
    text += "daemon:\n  control:\n    token: {credential: control}\n"
    config_path = tmp_path / "omnisync.yaml"
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path, environ={"HOME": str(tmp_path)})

    # The relative secret file is resolved against the config's directory.
    assert config.connections["spare"].api_key == SecretRef("file", str(tmp_path / "spare.key"))
    problems = [str(problem) for problem in check_secrets(config, environ={})]
    assert problems == [
        f"{config_path}:17:5: connections.main.api_key: secret env:OMNISEND_API_KEY is unavailable:"
        " environment variable OMNISEND_API_KEY is not set",
        f"{config_path}:21:5: connections.spare.api_key: secret file:{tmp_path}/spare.key is"
        f" unavailable: cannot read {tmp_path}/spare.key: No such file or directory",
        f"{config_path}:31:5: daemon.control.token: secret credential:control is unavailable:"
        " $CREDENTIALS_DIRECTORY is not set (run under systemd with LoadCredential=control:...,"
        " or use env or file instead)",
    ]

    (tmp_path / "spare.key").write_text(KEY, encoding="utf-8")
    (tmp_path / "control").write_text("token-value", encoding="utf-8")
    environ = {"OMNISEND_API_KEY": KEY, "CREDENTIALS_DIRECTORY": str(tmp_path)}
    assert check_secrets(config, environ=environ) == ()


def test_check_secrets_refuses_the_keys_a_run_would_refuse(tmp_path: Path) -> None:
    """An API key and the control token go into an HTTP header as they are: a value with
    a space or a character that is not printable ASCII passed `--check-secrets` and
    the daemon's start, then failed every run. A file's byte order mark is dropped."""
    text = replaced("exports:\n", "  spare:\n    api_key: {file: spare.key}\nexports:\n")
    config_path = tmp_path / "omnisync.yaml"
    config_path.write_text(text, encoding="utf-8")
    config = load_config(config_path, environ={"HOME": str(tmp_path)})
    (tmp_path / "spare.key").write_bytes(b"\xef\xbb\xbf" + KEY.encode() + b"\n")
    for bad in (KEY + " ", f"{KEY}\t", "\ufeff" + KEY, KEY.replace("e", "\u00e9")):
        problems = [
            str(problem) for problem in check_secrets(config, environ={"OMNISEND_API_KEY": bad})
        ]
        assert problems == [
            f"{config_path}:17:5: connections.main.api_key: secret env:OMNISEND_API_KEY is"
            " unavailable: the value contains spaces or characters that are not printable ASCII"
        ]
    assert check_secrets(config, environ={"OMNISEND_API_KEY": KEY}) == ()
    assert resolve_secret(config.connections["spare"].api_key, header=True) == KEY
    # Not every secret is a header: a PostgreSQL DSN has spaces.
    assert resolve_secret(SecretRef("env", "DSN"), environ={"DSN": "host=a dbname=b"}) == (
        "host=a dbname=b"
    )


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("{env: OMNISEND_API_KEY}", "{sk-live-ABCDEFGH12345678}"),
        ("{env: OMNISEND_API_KEY}", "{env: OMNISEND_API_KEY, sk-live-ABCDEFGH12345678: 1}"),
        (
            "kind: sqlite\n    path: cdp.sqlite",
            "kind: postgres\n    dsn: {postgresql://app:sk-live-ABCDEFGH12345678@db/shop}",
        ),
    ],
)
def test_a_secret_written_as_a_key_is_never_said_back(tmp_path: Path, old: str, new: str) -> None:
    # A flow mapping `{secret}` makes the secret a key of the reference.
    result = load_text(tmp_path, replaced(old, new))
    assert result.config is None
    assert any("it may be the secret itself" in message for message in messages(result))
    for diagnostic in result.diagnostics:
        assert "ABCDEFGH" not in f"{diagnostic.path} {diagnostic.message}"
