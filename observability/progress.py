"""Progress bars for long CLI work (``dxai deid``, ``dxai synth``): rich on a terminal, quiet
when standard error is not one (a pipe, a log file, CI).

The bar shows files done of the total, the rate, the time left and, where the caller counts
them, how many were held or failed so far.  It goes to standard error, so standard output stays
the command's result.
"""

from __future__ import annotations

import sys
from typing import TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    ProgressColumn,
    Task,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.text import Text


class RateColumn(ProgressColumn):
    """Items per second, e.g. ``12.3 files/s``."""

    def __init__(self, unit: str = "files") -> None:
        """``unit``: what is counted."""
        super().__init__()
        self.unit = unit

    def render(self, task: Task) -> Text:
        """The current rate (``?`` before there is one)."""
        speed = task.finished_speed or task.speed
        return Text("?" if speed is None else f"{speed:.1f} {self.unit}/s", style="progress.data")


class OutcomeColumn(ProgressColumn):
    """``held N, failed M`` from the task's fields (absent until the caller sets them)."""

    def render(self, task: Task) -> Text:
        """The counts so far, highlighted when not zero."""
        held, failed = task.fields.get("held"), task.fields.get("failed")
        if held is None and failed is None:
            return Text("")
        style = "bold red" if (held or failed) else "dim"
        return Text(f"held {held or 0}, failed {failed or 0}", style=style)


def on_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default: standard error) is an interactive terminal."""
    stream = stream or sys.stderr
    return bool(getattr(stream, "isatty", lambda: False)())


def cli_progress(
    enabled: bool = True, unit: str = "files", stream: TextIO | None = None
) -> Progress:
    """A progress bar for a CLI loop; disabled unless ``enabled`` and ``stream`` (standard
    error) is a terminal."""
    stream = stream or sys.stderr
    columns = (
        TextColumn("[progress.description]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TaskProgressColumn(),
        RateColumn(unit),
        TimeElapsedColumn(),
        TextColumn("eta"),
        TimeRemainingColumn(),
        OutcomeColumn(),
    )
    console = Console(file=stream)
    return Progress(
        *columns, console=console, transient=True, disable=not (enabled and on_terminal(stream))
    )
