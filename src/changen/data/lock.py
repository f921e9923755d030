"""One writer per output folder: an advisory ``flock`` held for the whole command.

The lock is a small hidden file beside the folder (``.<name>.changen-lock``), not inside it, so
that ``--overwrite`` can delete and recreate the folder while holding it. The holder writes its
pid and host into the file, for the message the next writer gets. The kernel releases a
``flock`` when its process dies, so a lock left by a killed run is never stale: the next run
simply takes it. The file itself is left in place (deleting it would let two writers lock two
different files). POSIX only (``fcntl``).
"""

from __future__ import annotations

import fcntl
import os
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from changen.data.output import write_error
from changen.errors import OutputBusyError


def lock_path(out: Path) -> Path:
    """The lock file of output folder ``out``."""
    return out.parent / f".{out.name}.changen-lock"


@contextmanager
def output_lock(out: str | os.PathLike[str], what: str = "dataset") -> Iterator[None]:
    """Hold ``out``'s writer lock, or raise :class:`OutputBusyError` naming its holder (a
    place where the lock cannot be written is a one-line error about the ``what``)."""
    out = Path(out).absolute()
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(lock_path(out), os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise write_error(out, e, what) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode("utf-8", "replace").strip() or "another process"
            raise OutputBusyError(
                f"{out}: in use by {holder}; wait for that run to finish (or stop it), then rerun"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} on {socket.gethostname()}".encode(), 0)
        yield
    finally:
        os.close(fd)
