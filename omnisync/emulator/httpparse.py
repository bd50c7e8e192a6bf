"""Reading a request's header block, fast for well-formed headers.

``http.server`` parses every request's headers with the ``email`` package's
feed parser: about a quarter of the emulator's time under a benchmark's
thousands of requests. :func:`read_headers` reads the lines with the same
limits as ``http.client.parse_headers`` (and raises the same errors), and
builds the same :class:`http.client.HTTPMessage` directly when every line is
a plain ``Name: value`` line; anything else (a folded line, a line without a
name) goes to the ``email`` parser, exactly as the standard library does.
"""

from __future__ import annotations

import email.parser
import http.client
import re
from typing import BinaryIO

#: http.client's limits: the longest header line, the most header lines.
MAX_LINE = 65536
MAX_HEADERS = 100

#: A plain header line, as the email parser reads one: a name of printable
#: ASCII other than ":", a colon, the value (leading blanks are not part of
#: it, trailing ones are), and no line break but the one ending the line.
_PLAIN = re.compile(r"([\x21-\x39\x3b-\x7e]+):[ \t]*([^\r\n]*)\r?\n")


def read_headers(rfile: BinaryIO) -> http.client.HTTPMessage:
    """The header block at ``rfile``'s position, up to and including the blank line.

    Raises ``http.client.LineTooLong`` and ``http.client.HTTPException`` as
    ``http.client.parse_headers`` does.
    """
    lines: list[bytes] = []
    while True:
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise http.client.LineTooLong("header line")
        lines.append(line)
        if len(lines) > MAX_HEADERS:
            raise http.client.HTTPException(f"got more than {MAX_HEADERS} headers")
        if line in (b"\r\n", b"\n", b""):
            break
    message = http.client.HTTPMessage()
    for line in lines[:-1]:
        plain = _PLAIN.fullmatch(line.decode("iso-8859-1"))
        if plain is None:
            text = b"".join(lines).decode("iso-8859-1")
            return email.parser.Parser(_class=http.client.HTTPMessage).parsestr(text)
        message.set_raw(plain.group(1), plain.group(2))
    message.set_payload("")  # as the email parser leaves it: nothing after the headers
    return message
