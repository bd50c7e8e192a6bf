"""Loading a config the way the daemon needs it: ``validate``'s loader, then every secret
resolved (the daemon never accepts a config it cannot run); any failure is
:class:`LoadFailed`, with no secret values."""

from __future__ import annotations

import os
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from omnisync.config.diagnostics import Diagnostic
from omnisync.config.loader import LoadResult, try_load_config
from omnisync.config.model import Config
from omnisync.config.secrets import SecretUnavailable, resolve_secret, secret_references
from omnisync.errors import OmnisyncError


class LoadFailed(OmnisyncError):
    """A config that cannot be used; ``problems`` are ``file:line:col: path: message`` lines,
    ``unreadable`` when its files could not be read at all, ``revision`` theirs (or ``""``);
    ``secrets`` when only secret files could not be read (they may yet appear)."""

    def __init__(
        self,
        problems: tuple[str, ...],
        *,
        unreadable: bool = False,
        revision: str = "",
        secrets: bool = False,
    ) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.unreadable = unreadable
        self.revision = revision
        self.secrets = secrets


class StartupFailed(OmnisyncError):
    """The daemon cannot start (e.g. its control address is taken); the message says why."""


@dataclass(frozen=True)
class LoadedConfig:
    """A config that loaded, validated and whose secrets resolved; ``secret_values`` are
    for the log redactor only (no repr), ``control_token`` the configured token, if any."""

    config: Config
    secret_values: tuple[str, ...] = field(default=(), repr=False)
    control_token: str | None = field(default=None, repr=False)


class DaemonConfigLoader:
    """Loads a config path with ``environ`` (read once: a daemon's environment does not
    change) through ``load``, and resolves its secrets. :class:`LoadFailed` when it cannot
    be used, a bug in loading included: neither a start nor a reload meets a traceback."""

    def __init__(
        self,
        environ: Mapping[str, str] | None = None,
        *,
        load: Callable[..., LoadResult] = try_load_config,
    ) -> None:
        self._environ = dict(os.environ if environ is None else environ)
        self._load = load

    def __call__(self, path: Path) -> LoadedConfig:
        try:
            return self._loaded(path)
        except LoadFailed:
            raise
        except Exception as error:
            # Where, not what: the message may quote a secret not yet registered for redaction.
            where = traceback.extract_tb(error.__traceback__)[-1]
            place = f"{type(error).__name__} at {os.path.basename(where.filename)}:{where.lineno}"
            raise LoadFailed((f"internal error ({place}); please report it",)) from None

    def _loaded(self, path: Path) -> LoadedConfig:
        result = self._load(path, environ=self._environ)
        if result.config is None:
            raise LoadFailed(
                tuple(str(diagnostic) for diagnostic in result.diagnostics),
                unreadable=result.unreadable,
                revision=result.revision,
            )
        config = result.config
        resolved: dict[str, str] = {}  # by dotted path, each path once
        problems: list[Diagnostic] = []
        unread_kinds: set[str] = set()
        for dotted, reference, header in secret_references(config):
            try:
                resolved[dotted] = resolve_secret(reference, environ=self._environ, header=header)
            except SecretUnavailable as error:
                unread_kinds.add(reference.kind)
                problems.append(Diagnostic.at(config.position_or_start(dotted), dotted, str(error)))
        if problems:
            raise LoadFailed(
                tuple(str(problem) for problem in sorted(problems)),
                revision=config.revision,
                # Only a file may yet appear: the environment and the credentials a
                # service started with do not change under a running process.
                secrets=unread_kinds == {"file"},
            )
        return LoadedConfig(
            config=config,
            secret_values=tuple(resolved.values()),
            control_token=resolved.get("daemon.control.token"),
        )
