"""Shared test helpers: a small valid config to vary, and writing configs to disk."""

from __future__ import annotations

from pathlib import Path

from omnisync.config.loader import LoadResult, try_load_config

REPOSITORY = Path(__file__).resolve().parent.parent.parent
EXAMPLE = REPOSITORY / "config.example.yaml"
SPLIT = REPOSITORY / "tests" / "fixtures" / "config" / "split"
ENVIRON = {"HOME": "/home/tester"}

#: A valid config; tests replace parts of it to break one thing at a time.
BASE = """\
version: 1
users:
  olena:
    role: admin
  marko:
    role: contributor
sources:
  cdp:
    kind: sqlite
    path: cdp.sqlite
segments:
  vip:
    source: cdp
    query: SELECT email FROM customers
connections:
  main:
    api_key: {env: OMNISEND_API_KEY}
    allowed_users: [marko]
    data_transfer_accepted: true
exports:
  vip:
    segment: vip
    connection: main
    owner: marko
    mapping:
      email: email
"""


def replaced(old: str, new: str, *, text: str = BASE) -> str:
    """``text`` with the one occurrence of ``old`` replaced by ``new``."""
    assert text.count(old) == 1, f"{old!r} occurs {text.count(old)} times"
    return text.replace(old, new)


def load_text(
    directory: Path,
    text: str,
    *,
    name: str = "omnisync.yaml",
    environ: dict[str, str] | None = None,
) -> LoadResult:
    """Write ``text`` to ``directory/name`` and load it."""
    path = directory / name
    path.write_text(text, encoding="utf-8")
    return try_load_config(path, environ=ENVIRON if environ is None else environ)


def messages(result: LoadResult) -> list[str]:
    """``path: message`` of each diagnostic, without the position."""
    return [f"{diagnostic.path}: {diagnostic.message}" for diagnostic in result.diagnostics]
