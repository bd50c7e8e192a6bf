"""omnisync schema: print the JSON Schema (draft 2020-12) every config file must match.

Exactly the bytes of schemas/omnisync.schema.json in the repository
(omnisync/schemas/omnisync.schema.json in the wheel), so that
`omnisync schema > schema.json` and a checked-in copy compare equal.
"""

from __future__ import annotations

import argparse
import sys

from omnisync.cli.main import EXIT_OK, reader_gone


def register(parser: argparse.ArgumentParser) -> None:
    """No options."""


def handle(args: argparse.Namespace) -> int:
    # Imported here: `omnisync --help` imports every command's module.
    from omnisync.config.schema import schema_text

    # Bytes, not text: the file's own, whatever the locale.
    try:
        sys.stdout.flush()
        sys.stdout.buffer.write(schema_text().encode("utf-8"))
        sys.stdout.buffer.flush()
    except BrokenPipeError:
        reader_gone()  # it had what it wanted, as with every command's write
    return EXIT_OK
