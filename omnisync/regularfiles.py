"""Opening a file that must be a regular one: the one rule for source files, secret
files and the state database's files.

A FIFO (or a device) at such a path must never hang a run, a daemon or root's
``omnisync history``: opening one for reading waits for a writer, and reading a device
may never end. So the path is opened without blocking, and anything but a regular file
is closed again at once.
"""

from __future__ import annotations

import errno
import os
import stat

from omnisync.errors import OmnisyncError


class NotRegularFile(OSError, OmnisyncError):
    """The path is a FIFO, a device or a socket, not a regular file (an ``OSError``, as
    what else opening it can raise)."""


def open_regular_file(
    path: str | os.PathLike[str], flags: int = os.O_RDONLY, mode: int = 0o777
) -> int:
    """A descriptor of ``path`` opened with ``flags`` (``O_NONBLOCK`` and ``O_CLOEXEC``
    added) and, for a file it creates, ``mode``. Raises ``IsADirectoryError`` for a
    directory (as ``open()`` does), :class:`NotRegularFile` for any other file that is not
    a regular one, and the ``OSError`` of ``os.open`` when it cannot be opened."""
    descriptor = os.open(path, flags | os.O_NONBLOCK | os.O_CLOEXEC, mode)
    kind = stat.S_IFMT(os.fstat(descriptor).st_mode)
    if kind == stat.S_IFREG:
        return descriptor
    os.close(descriptor)
    if kind == stat.S_IFDIR:
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), os.fspath(path))
    raise NotRegularFile(f"{os.fspath(path)} is not a regular file")
