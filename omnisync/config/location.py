"""Where the config is: the ``--config`` option every command shares.

``--config PATH`` names a file or a directory of ``*.yaml`` files; without it
``$OMNISYNC_CONFIG`` is used, else ``/etc/omnisync``.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping

DEFAULT_CONFIG_PATH = "/etc/omnisync"
CONFIG_ENVIRONMENT_VARIABLE = "OMNISYNC_CONFIG"


def add_config_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--config PATH`` (stored as ``args.config``, ``None`` when not given)."""
    parser.add_argument(
        "--config",
        metavar="PATH",
        default=None,
        help=(
            "config file, or directory of *.yaml files"
            f" (default: ${CONFIG_ENVIRONMENT_VARIABLE}, else {DEFAULT_CONFIG_PATH})"
        ),
    )


def config_path_from(args: argparse.Namespace, environ: Mapping[str, str]) -> str:
    """The config path a command should load: ``--config``, else ``$OMNISYNC_CONFIG``
    when set and not empty, else ``/etc/omnisync``."""
    given: str | None = args.config
    return given or environ.get(CONFIG_ENVIRONMENT_VARIABLE) or DEFAULT_CONFIG_PATH
