"""The metrics log of a run: a metrics CSV (one row per logged step) and a plot of its curves.

Any trainer uses them the same way::

    log = MetricsLog(run / "metrics.csv", plot=run / "losses.png", resume_step=start)
    log.log(step, loss_d=..., loss_g=...)      # appends a row; the plot follows every 30 s
    log.close()                                # final plot

Columns are ``step`` followed by every metric ever logged, in order of first appearance; a row
leaves the metrics it does not have empty (e.g. FID, computed more rarely). Rows are appended;
the file is rewritten atomically only when a new column appears. When a run resumes from a
checkpoint at step ``k``, rows after ``k`` (logged by the interrupted run after that
checkpoint) and a last line cut short by a crash are dropped, so the CSV reads as one
uninterrupted run.
"""

from __future__ import annotations

import csv
import io
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path

from changen.data.atomic import atomic_path, write_text_atomic
from changen.errors import DataError

Row = dict[str, float]
LOSS_GROUP = {"loss": "loss"}


class MetricsLog:
    """A CSV of metrics by step, with an optional PNG plot refreshed every ``plot_interval``
    seconds (and on :meth:`close`); ``groups`` as in :func:`plot_metrics`."""

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        plot: str | os.PathLike[str] | None = None,
        resume_step: int | None = None,
        plot_interval: float = 30.0,
        groups: Mapping[str, str] | None = None,
    ) -> None:
        self.path = Path(path)
        self.plot_path = None if plot is None else Path(plot)
        self.plot_interval = plot_interval
        self.groups = groups
        self.rows: list[tuple[int, Row]] = []
        self.columns: list[str] = []
        self._plotted = -math.inf
        if resume_step is not None and self.path.is_file():
            self.rows = [(s, r) for s, r in read_metrics(self.path) if s <= resume_step]
            self.columns = _columns(self.rows)
        self._rewrite()

    def log(self, step: int, **values: float) -> None:
        """Append a row for ``step``."""
        row = {k: float(v) for k, v in values.items()}
        self.rows.append((step, row))
        if any(k not in self.columns for k in row):
            self.columns = _columns(self.rows)
            self._rewrite()
        else:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(_line(step, row, self.columns))
        if time.monotonic() - self._plotted >= self.plot_interval:
            self.plot()

    def plot(self) -> None:
        """Redraw the plot now (no-op without a plot path or rows)."""
        if self.plot_path is not None and self.rows:
            plot_metrics(self.rows, self.plot_path, self.groups)
            self._plotted = time.monotonic()

    def close(self) -> None:
        """Final plot."""
        self.plot()

    def _rewrite(self) -> None:
        text = _csv(["step", *self.columns])
        text += "".join(_line(s, r, self.columns) for s, r in self.rows)
        write_text_atomic(self.path, text)


def _columns(rows: list[tuple[int, Row]]) -> list[str]:
    return list(dict.fromkeys(k for _, row in rows for k in row))


def _line(step: int, row: Row, columns: list[str]) -> str:
    return _csv([str(step), *("" if c not in row else f"{row[c]:.6g}" for c in columns)])


def _csv(cells: list[str]) -> str:
    buf = io.StringIO()
    csv.writer(buf, lineterminator="\n").writerow(cells)
    return buf.getvalue()


def read_metrics(path: str | os.PathLike[str]) -> list[tuple[int, Row]]:
    """The rows of a metrics CSV as ``(step, {metric: value})``, empty cells left out; a last
    row cut short by a crash is skipped."""
    rows = []
    try:
        with open(path, newline="", encoding="utf-8") as f:
            for r in csv.DictReader(f):
                if None in r.values() or None in r:
                    continue
                rows.append(
                    (int(r["step"]), {k: float(v) for k, v in r.items() if k != "step" and v})
                )
    except (OSError, KeyError, ValueError) as e:
        raise DataError(
            f"{path}: unreadable metrics CSV ({e}); move it away to start afresh"
        ) from None
    return rows


def plot_metrics(
    rows: list[tuple[int, Row]],
    path: str | os.PathLike[str],
    groups: Mapping[str, str] | None = None,
) -> None:
    """Plot every metric against the step as a PNG written atomically. ``groups`` maps an axis
    title to a substring: metrics whose names hold it share that axis (default: every
    ``loss`` together); any other metric gets an axis of its own."""
    from matplotlib.figure import Figure

    names = _columns(rows)
    axes_of: dict[str, list[str]] = {}
    for name in names:
        title = next((t for t, key in (groups or LOSS_GROUP).items() if key in name), name)
        axes_of.setdefault(title, []).append(name)
    if not axes_of:
        return
    fig = Figure(figsize=(7, 2.6 * len(axes_of)))
    axes = fig.subplots(len(axes_of), 1, squeeze=False)[:, 0]
    for ax, (title, group) in zip(axes, axes_of.items(), strict=True):
        for name in group:
            pts = [(s, r[name]) for s, r in rows if name in r and math.isfinite(r[name])]
            if pts:
                xs, ys = zip(*pts, strict=True)
                ax.plot(xs, ys, label=name, marker="." if len(pts) < 20 else None)
        ax.set_ylabel(title)
        ax.grid(alpha=0.3)
        ax.legend(loc="best", fontsize="small")
    axes[-1].set_xlabel("step")
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=100, format="png")
