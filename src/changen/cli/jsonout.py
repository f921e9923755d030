"""``--json`` for every command that produces something: one JSON object on stdout, nothing else
there (progress, notes and warnings go to stderr), so scripts can parse a run's summary."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

JSON = typer.Option(
    False, "--json", help="Print one JSON object (the run's summary) on stdout, nothing else."
)


def _default(value: Any) -> Any:
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def emit(summary: dict[str, Any]) -> None:
    """Print ``summary`` as one line of JSON on stdout (paths as strings)."""
    typer.echo(json.dumps(summary, default=_default))
