"""``omnisync schema``: print the config's JSON Schema (draft 2020-12).

For editors and other tools: exactly the bytes of ``schemas/omnisync.schema.json``
in the repository (``omnisync/schemas/omnisync.schema.json`` in the wheel), so
``omnisync schema > schema.json`` and a checked-in copy compare equal.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from omnisync.cli.main import reader_gone
from omnisync.config.schema import schema_text


def register(subparsers: Any) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "schema",
        help="print the config's JSON Schema",
        description="Print the JSON Schema (draft 2020-12) that every config file must match.",
    )
    parser.set_defaults(handler=handle)


def handle(args: argparse.Namespace) -> int:
    data = schema_text().encode("utf-8")
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        reader_gone()  # `omnisync schema | head`: the reader has what it wanted
    return 0
