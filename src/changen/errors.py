"""Typed exceptions for mistakes a user can fix.

Each message is one line saying what was wrong, where (file, band, class id) and what to do.
The CLI prints that line and exits without a traceback, with the error's ``exit_code``:
:data:`USAGE_EXIT` when the command line must change (a wrong or inconsistent option, as the
parser's own errors), :data:`DATA_EXIT` when the files must (an input that is malformed or
unreadable, an output that cannot be written now).
"""

from __future__ import annotations

from typing import ClassVar

#: Exit status of a usage error: fix the command line (click/typer's own status for one).
USAGE_EXIT = 2
#: Exit status of a data error: fix, convert or free the files the command reads or writes.
DATA_EXIT = 3


class ChangenError(Exception):
    """Base class of every error changen raises for bad input or bad configuration."""

    exit_code: ClassVar[int] = USAGE_EXIT


class DataError(ChangenError):
    """An input file or array is malformed, inconsistent or unreadable."""

    exit_code = DATA_EXIT


class FormatError(ChangenError):
    """A dataset format or output layout is unknown or could not be detected."""

    exit_code = DATA_EXIT


class OutputExistsError(ChangenError):
    """An output folder already holds files and the caller did not allow overwriting them."""


class OutputBusyError(ChangenError):
    """Another process is writing the same output folder."""

    exit_code = DATA_EXIT


class ConfigError(ChangenError):
    """A configuration value is out of range or inconsistent with the data."""
