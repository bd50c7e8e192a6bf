"""What a config names outside itself: secret references
(:class:`~omnisync.config.model.SecretRef`) and files.

:func:`resolve_secret` is the one place a secret value is read; a
:class:`SecretUnavailable` names the reference and the reason, never a value, so it is
safe to log and to show. :func:`check_references` (``validate --check-references``,
off by default: CI rarely has the files) only opens the files, never reads them.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator, Mapping

from omnisync.config.diagnostics import Diagnostic
from omnisync.config.model import Config, SecretRef
from omnisync.errors import OmnisyncError
from omnisync.regularfiles import NotRegularFile, open_regular_file

#: Secrets are keys and passwords; a larger file is a wrong path.
MAX_SECRET_BYTES = 64 * 1024


class SecretUnavailable(OmnisyncError):
    """A secret reference that cannot be resolved. The message never contains a value."""

    def __init__(self, reference: SecretRef, reason: str) -> None:
        self.reference = reference
        self.reason = reason
        super().__init__(f"secret {reference.describe()} is unavailable: {reason}")


def resolve_secret(
    ref: SecretRef, *, environ: Mapping[str, str] | None = None, header: bool = False
) -> str:
    """The secret ``ref`` refers to, without one trailing newline (nor a file's UTF-8 byte
    order mark); ``environ`` (default ``os.environ``) gives the variables and
    ``$CREDENTIALS_DIRECTORY``. Raises :class:`SecretUnavailable` when the variable is
    unset, the file cannot be read, or the value is empty, not UTF-8, larger than 64 KiB
    or spans several lines; with ``header`` (an API key or bearer token, sent in an HTTP
    header as it is), also when :func:`header_value_problem` finds one."""
    value = _resolve(ref, os.environ if environ is None else environ)
    problem = header_value_problem(value) if header else None
    if problem is not None:
        raise SecretUnavailable(ref, problem)
    return value


def header_value_problem(value: str) -> str | None:
    """Why ``value`` cannot go into an HTTP header as it is, or ``None``."""
    if value.isascii() and value.isprintable() and " " not in value:
        return None
    # Never the character itself: it is part of a secret.
    return "the value contains spaces or characters that are not printable ASCII"


def secret_references(config: Config) -> Iterator[tuple[str, SecretRef, bool]]:
    """Every secret reference in ``config``: its dotted path, the reference, and whether
    it is sent in an HTTP header (see :func:`resolve_secret`)."""
    for name, connection in config.connections.items():
        yield f"connections.{name}.api_key", connection.api_key, True
    for name, source in config.sources.items():
        if source.dsn is not None:
            yield f"sources.{name}.dsn", source.dsn, False
    if config.daemon.state.dsn is not None:
        yield "daemon.state.dsn", config.daemon.state.dsn, False
    if config.daemon.control_token is not None:
        yield "daemon.control.token", config.daemon.control_token, True


def _resolve(ref: SecretRef, environment: Mapping[str, str]) -> str:
    if ref.kind == "env":
        value = environment.get(ref.name)
        if value is None:
            raise SecretUnavailable(ref, f"environment variable {ref.name} is not set")
        return _clean(ref, value)
    if ref.kind == "file":
        return _clean(ref, _read_file(ref, ref.name))
    directory = environment.get("CREDENTIALS_DIRECTORY")
    if not directory:
        raise SecretUnavailable(
            ref,
            "$CREDENTIALS_DIRECTORY is not set (run under systemd with"
            f" LoadCredential={ref.name}:..., or use env or file instead)",
        )
    if "/" in ref.name or ref.name in ("", ".", ".."):
        raise SecretUnavailable(ref, "a credential name must not contain '/'")
    return _clean(ref, _read_file(ref, os.path.join(directory, ref.name)))


def check_secrets(config: Config, *, environ: Mapping[str, str]) -> tuple[Diagnostic, ...]:
    """A diagnostic at each secret reference of ``config`` that cannot be resolved;
    the values are discarded."""
    diagnostics = []
    for path, ref, header in secret_references(config):
        try:
            resolve_secret(ref, environ=environ, header=header)
        except SecretUnavailable as error:
            diagnostics.append(Diagnostic.at(config.position_or_start(path), path, str(error)))
    return tuple(diagnostics)


def check_references(config: Config) -> tuple[Diagnostic, ...]:
    """A diagnostic, where the path is written, for each file ``config`` names (sources'
    ``path``, ``{file: PATH}`` secrets) that is missing or unreadable."""
    files = [
        (f"sources.{name}.path", source.path, f"{source.kind} source")
        for name, source in config.sources.items()
        if source.path is not None
    ]
    for dotted, reference, _header in secret_references(config):
        if reference.kind == "file":
            files.append((dotted, reference.name, "secret file"))
    diagnostics = []
    for dotted, path, what in files:
        problem = _file_problem(path)
        if problem is not None:
            position = config.position_or_start(dotted)
            diagnostics.append(Diagnostic.at(position, dotted, f"{what} {path}: {problem}"))
    return tuple(sorted(diagnostics))


def _file_problem(path: str) -> str | None:
    """Why ``path`` cannot be read as a file, or ``None`` when it can."""
    try:
        mode = os.stat(path).st_mode
    except FileNotFoundError:
        return "does not exist"
    except OSError as error:
        return f"cannot be reached: {(error.strerror or str(error)).lower()}"
    if stat.S_ISDIR(mode):
        return "is a directory, not a file"
    if not stat.S_ISREG(mode):
        return "is not a regular file (a pipe or a device would block or never end)"
    try:
        # Non-blocking: a FIFO at that path must not hang validation. Nothing is read.
        descriptor = os.open(path, os.O_RDONLY | os.O_NONBLOCK)
    except OSError as error:
        return f"cannot be read: {(error.strerror or str(error)).lower()}"
    os.close(descriptor)
    return None


def _read_file(ref: SecretRef, path: str) -> str:
    try:
        with os.fdopen(open_regular_file(path), "rb") as handle:
            content = handle.read(MAX_SECRET_BYTES + 1)
    except NotRegularFile:
        raise SecretUnavailable(ref, f"{path} is not a regular file") from None
    except OSError as error:
        raise SecretUnavailable(ref, f"cannot read {path}: {error.strerror}") from None
    if len(content) > MAX_SECRET_BYTES:
        raise SecretUnavailable(ref, f"{path} is larger than 64 KiB")
    try:
        # utf-8-sig: an editor's byte order mark is not part of a key.
        return content.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise SecretUnavailable(ref, f"{path} is not UTF-8 text") from None


def _clean(ref: SecretRef, value: str) -> str:
    # Files written with `echo` end in a newline that is not part of the key.
    value = value[:-2] if value.endswith("\r\n") else value.removesuffix("\n")
    if not value.strip():
        raise SecretUnavailable(ref, "the value is empty")
    if "\n" in value or "\r" in value:
        raise SecretUnavailable(ref, "the value spans more than one line")
    return value
