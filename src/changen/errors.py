"""Typed exceptions for mistakes a user can fix.

Each message is one line saying what was wrong, where (file, band, class id) and what to do.
The CLI prints that line and exits non-zero, without a traceback.
"""

from __future__ import annotations


class ChangenError(Exception):
    """Base class of every error changen raises for bad input or bad configuration."""


class DataError(ChangenError):
    """An input file or array is malformed, inconsistent or unreadable."""


class FormatError(ChangenError):
    """A dataset format or output layout is unknown or could not be detected."""


class OutputExistsError(ChangenError):
    """An output folder already holds files and the caller did not allow overwriting them."""


class OutputBusyError(ChangenError):
    """Another process is writing the same output folder."""


class ConfigError(ChangenError):
    """A configuration value is out of range or inconsistent with the data."""
