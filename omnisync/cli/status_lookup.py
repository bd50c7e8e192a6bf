"""Where ``omnisync status`` looks for the daemon of a config: :func:`find_state_dir`.

--state-dir, else the config's daemon.state_dir, read as written even while the
config does not load, else systemd's StateDirectory= when its daemon runs this
config, else the default state directory.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from omnisync.cli.common import fail
from omnisync.cli.main import EXIT_USAGE
from omnisync.config.build import default_state_dir, home_directory, resolve_path
from omnisync.config.loader import config_file_names, try_load_config
from omnisync.config.location import config_path_from
from omnisync.config.model import Config
from omnisync.config.yamlload import parse_document
from omnisync.daemon.discovery import read_info

#: Where a daemon's state usually is, when the config cannot say: systemd's StateDirectory.
_SYSTEM_STATE_DIR = "/var/lib/omnisync"


@dataclass(frozen=True)
class Lookup:
    """Where to look for the daemon; ``looked`` says where and why, for messages."""

    state_dir: Path
    looked: str
    #: Why the config does not load, when it does not (the daemon may run an older one).
    config_problem: str | None = None
    config: Config | None = None


def find_state_dir(args: argparse.Namespace) -> Lookup:
    """Where the daemon of ``--config`` keeps its state; exits 2 when the config cannot
    be read."""
    if args.state_dir:
        return Lookup(
            Path(args.state_dir), f"in the state directory {args.state_dir} (--state-dir)"
        )
    path = config_path_from(args, os.environ)
    result = try_load_config(path, environ=os.environ)
    home = home_directory(os.environ)

    def lookup(directory: str, reason: str, problem: str | None = None) -> Lookup:
        looked = f"for the config {path}; looked in {directory}, {reason}"
        return Lookup(Path(directory), looked, problem, result.config)

    if result.config is not None:
        return lookup(result.config.daemon.state_dir, "the config's state directory")
    first = str(result.diagnostics[0])  # never empty without a config (LoadResult)
    if result.unreadable:
        raise SystemExit(
            fail(f"omnisync status: cannot read the config at {path}: {first}", EXIT_USAGE)
        )
    problem = f"the config at {path} does not load right now ({first})"
    written = written_state_dir(path, home=home)
    if written is not None:
        return lookup(written[0], f"daemon.state_dir as written in {written[1]}", problem)
    # No state_dir written anywhere: the daemon used the default, or, as a service,
    # systemd's StateDirectory= (which a shell's missing $STATE_DIRECTORY cannot tell).
    system = read_info(Path(_SYSTEM_STATE_DIR))
    if system is not None and os.path.abspath(system.config_path) == os.path.abspath(path):
        return lookup(_SYSTEM_STATE_DIR, "systemd's StateDirectory=", problem)
    return lookup(
        default_state_dir(os.environ, home=home),
        "the default state directory: the config sets no daemon.state_dir",
        problem,
    )


def written_state_dir(path: str, *, home: str) -> tuple[str, str] | None:
    """``daemon.state_dir`` as a config that does not load still writes it (resolved as the
    loader does), and its file. A file that is not YAML is searched line by line."""
    try:
        files = config_file_names(path) if os.path.isdir(path) else [path]
    except OSError:
        return None
    for file in files:
        try:
            content = Path(file).read_bytes()
        except OSError:
            continue
        document = parse_document(content, file=file)
        if document.data is not None:
            daemon = document.data.get("daemon")
            value = daemon.get("state_dir") if isinstance(daemon, dict) else None
        else:
            value = _state_dir_line(content.decode("utf-8", "replace"))
        if isinstance(value, str) and value.strip():
            return resolve_path(value, os.path.dirname(os.path.abspath(file)), home), file
    return None


_TOP_LEVEL = re.compile(r"^(?P<key>[A-Za-z_][\w-]*)\s*:")
_STATE_DIR = re.compile(r"^\s+state_dir\s*:\s*(?P<value>.+?)\s*$")


def _state_dir_line(text: str) -> object:
    """``state_dir`` under a top-level ``daemon:`` block, from a file YAML cannot parse."""
    in_daemon = False
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        top = _TOP_LEVEL.match(line)
        if top is not None:
            in_daemon = top.group("key") == "daemon"
        elif in_daemon and (found := _STATE_DIR.match(line)):
            try:
                # The value alone is YAML: quotes, escapes and a trailing comment.
                return yaml.safe_load(found.group("value"))
            except yaml.YAMLError:
                return None
    return None
