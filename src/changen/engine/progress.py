"""Where progress goes: a protocol the library reports to and the CLI renders (with rich).

Nothing below ``cli/`` draws progress itself; library code takes a :class:`ProgressSink`
(default :data:`SILENT`) and calls ``advance = sink.task(description, total)`` then
``advance(n)`` (optionally with ``info``: a few named figures such as losses to show beside the
bar) and ``sink.note(text)`` for one-line messages such as warnings.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol, TypeVar

T = TypeVar("T")
_LOG = logging.getLogger("changen")

Advance = Callable[..., None]


class ProgressSink(Protocol):
    """A receiver of progress: tasks with a total, and notes."""

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        """Start a task; the returned ``advance(n=1, info=None)`` moves it on by ``n``."""
        ...

    def note(self, text: str) -> None:
        """Show one line (a warning or a summary) to the user."""
        ...


class _Silent:
    """A sink that draws nothing and logs notes as warnings (the library default)."""

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        return _ignore

    def note(self, text: str) -> None:
        _LOG.warning(text)


def _ignore(n: int = 1, info: dict[str, float] | None = None) -> None:
    return None


SILENT: ProgressSink = _Silent()


def track(
    items: Iterable[T], sink: ProgressSink, description: str, total: int | None = None
) -> Iterator[T]:
    """Iterate ``items`` while advancing one task of ``sink`` per item."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]  # guarded by hasattr: a Sized iterable
    advance = sink.task(description, total)
    for item in items:
        yield item
        advance(1)
