"""Where output goes: progress, spinners and tables on stderr; results (or JSON) on stdout."""
from __future__ import annotations

import contextlib
import json
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

err = Console(stderr=True)
out = Console(highlight=False)


@contextlib.contextmanager
def stage(message: str) -> Iterator[None]:
    """A spinner on stderr for a stage of work whose length we cannot count."""
    with err.status(escape(message), spinner="dots"):
        yield
    err.print(f"[green]✓[/] {escape(message)}")


@contextlib.contextmanager
def progress_bar(total: int, description: str) -> Iterator[Callable[[int], None]]:
    """A bar with count, rate and ETA on stderr; yields `advance(n)`, which redraws it.

    No refresh thread: the steps start process pools while a bar is up, and a process forked
    while another thread holds a lock (Rich's, or a module's import lock) can hang for good in
    its first import (seen in a host worker's torch.load)."""
    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TimeRemainingColumn())
    with Progress(*columns, console=err, transient=False, auto_refresh=False) as progress:
        task = progress.add_task(description, total=total, rate="")
        progress.refresh()

        def advance(n: int = 1) -> None:
            progress.advance(task, n)
            speed = progress.tasks[0].speed
            if speed:
                progress.update(task, rate=f"{speed:.1f}/s")
            progress.refresh()

        yield advance


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
