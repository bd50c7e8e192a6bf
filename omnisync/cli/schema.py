"""``omnisync schema``: print the config's JSON Schema (draft 2020-12).

For editors and other tools; the same file is ``schemas/omnisync.schema.json``
in the repository and ``omnisync/schemas/omnisync.schema.json`` in the wheel.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from omnisync.config.schema import load_schema


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schema",
        help="print the config's JSON Schema",
        description="Print the JSON Schema (draft 2020-12) that every config file must match.",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    text = json.dumps(load_schema(), indent=2, ensure_ascii=False) + "\n"
    try:
        sys.stdout.write(text)
        sys.stdout.flush()
    except BrokenPipeError:
        # `omnisync schema | head`: the reader has what it wanted.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 0
