"""Where output goes: progress, spinners and tables on stderr; results (or JSON) on stdout."""
from __future__ import annotations

import contextlib
import json
import sys
from typing import Any, Iterator

from rich.console import Console

err = Console(stderr=True)
out = Console(highlight=False)


@contextlib.contextmanager
def stage(message: str) -> Iterator[None]:
    """A spinner on stderr for a stage of work whose length we cannot count."""
    with err.status(message, spinner="dots"):
        yield
    err.print(f"[green]✓[/] {message}")


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no colour, no wrapping) for scripts."""
    sys.stdout.write(json.dumps(data, indent=2, default=str) + "\n")
    sys.stdout.flush()
