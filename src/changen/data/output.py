"""The output-folder rule every command follows: never write into a non-empty folder by accident."""

from __future__ import annotations

from pathlib import Path

from changen.errors import OutputExistsError


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
