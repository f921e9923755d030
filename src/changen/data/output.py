"""The output-folder rules every command follows: never write into a non-empty folder by
accident, and say in one line why a folder cannot be written."""

from __future__ import annotations

import errno
from pathlib import Path

from changen.errors import DataError, OutputExistsError


def check_output_dir(out: Path, overwrite: bool) -> bool:
    """Raise :class:`OutputExistsError` if ``out`` is a file, or a non-empty folder while
    ``overwrite`` is false; return whether it holds files (which the caller may replace)."""
    if out.exists() and not out.is_dir():
        raise OutputExistsError(f"{out}: exists and is not a folder; choose another output folder")
    busy = out.is_dir() and any(out.iterdir())
    if busy and not overwrite:
        raise OutputExistsError(
            f"{out}: the output folder is not empty; choose a new or empty folder, "
            f"or pass --overwrite (overwrite=True) to replace what is there"
        )
    return busy


WRITE_ERRNOS = frozenset({errno.EROFS, errno.ENOSPC, errno.EACCES, errno.EDQUOT, errno.EPERM})
"""The errnos of writes the user can fix: read-only, full, or not theirs to write."""


def write_error(out: Path, e: OSError, what: str = "dataset") -> DataError:
    """The one-line :class:`DataError` of ``e``, raised while writing the ``what`` at ``out``."""
    if isinstance(e, FileExistsError | NotADirectoryError):
        reason = "Not a directory"
    else:
        reason = e.strerror or str(e)
    if e.errno in (errno.ENOSPC, errno.EDQUOT):
        fix = "free disk space (or quota) or choose another output folder"
    else:
        fix = "choose a writable output folder (or fix its permissions)"
    return DataError(f"{out}: cannot write the {what} ({reason}); {fix}, then rerun")
