"""The CLI's rendering of library progress: a :class:`~changen.engine.progress.ProgressSink`
drawn with rich (bars with count, rate, latest figures, elapsed time and ETA)."""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text

from changen.engine.progress import Advance


class RateColumn(ProgressColumn):
    """Items per second of a task, in the unit the task was given."""

    def render(self, task: Task) -> Text:
        speed = task.finished_speed or task.speed
        unit = task.fields.get("unit", "it")
        return Text(f"-- {unit}/s" if speed is None else f"{speed:.2f} {unit}/s")


def format_info(info: Mapping[str, float]) -> str:
    """``name value`` pairs with 4 significant digits, e.g. ``loss_g 0.6931  loss_d 1.386``."""
    return "  ".join(f"{k} {v:.4g}" for k, v in info.items())


class RichProgress:
    """A progress sink drawing one rich bar per task; notes are printed above the bars."""

    def __init__(self, progress: Progress, unit: str = "it") -> None:
        self.progress = progress
        self.unit = unit

    def task(self, description: str, total: int | None, completed: int = 0) -> Advance:
        task_id = self.progress.add_task(
            description, total=total, completed=completed, info="", unit=self.unit
        )

        def advance(n: int = 1, info: Mapping[str, float] | None = None) -> None:
            if info is None:
                self.progress.update(task_id, advance=n)
            else:
                self.progress.update(task_id, advance=n, info=format_info(info))

        return advance

    def note(self, text: str) -> None:
        """Print ``text`` above the bar as it is (never read as rich markup: a hint such as
        ``pip install "changen[metrics]"`` keeps its brackets)."""
        self.progress.console.print(escape(text), highlight=False, soft_wrap=True)


def progress_bar(enabled: bool = True, transient: bool = False) -> Progress:
    """The CLI's progress display: description, bar, count, rate, figures, elapsed, ETA."""
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        RateColumn(),
        TextColumn("{task.fields[info]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
        console=Console(stderr=True),
        disable=not enabled,
        transient=transient,
    )


@contextmanager
def rich_sink(
    enabled: bool = True, unit: str = "it", transient: bool = False
) -> Iterator[RichProgress]:
    """A started :class:`RichProgress` for a ``with`` block (nothing drawn when disabled,
    notes still printed)."""
    with progress_bar(enabled, transient) as bar:
        yield RichProgress(bar, unit)
