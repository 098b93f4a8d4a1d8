"""Where asrfair talks to people: stderr, so that stdout stays clean for reports and ``--json``."""

from __future__ import annotations

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn


def stderr() -> Console:
    return Console(stderr=True)


def progress_bar(label: str, *, enabled: bool = True, extra: str = "") -> Progress:
    """A transient bar on stderr; ``extra`` is a field template, e.g. ``{task.fields[loss]}``."""
    return Progress(
        TextColumn(f"[bold]{label}[/]{(' ' + extra) if extra else ''}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=stderr(),
        disable=not enabled,
        transient=True,
    )
