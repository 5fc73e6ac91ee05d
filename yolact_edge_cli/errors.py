"""Every failure a user can cause becomes a YedgeError; the CLI maps it to one line and an exit code."""
from __future__ import annotations

from pathlib import Path

EXIT_OK = 0
EXIT_FAILED = 1
EXIT_USAGE = 2
EXIT_INPUT = 3
EXIT_ENVIRONMENT = 4
EXIT_ACCURACY = 5
EXIT_INTERRUPTED = 130


class YedgeError(Exception):
    """A failure with what happened, the path involved, and what to do about it."""

    exit_code = EXIT_FAILED

    def __init__(self, message: str, *, path: str | Path | None = None, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.path = None if path is None else str(path)
        self.hint = hint

    def __reduce__(self):
        # keeps path and hint when a worker process raises it
        return _rebuild, (type(self), self.message, self.path, self.hint)

    def one_line(self) -> str:
        where = f"{self.path}: " if self.path else ""
        fix = f" — {self.hint}" if self.hint else ""
        return f"{where}{self.message}{fix}"


class UsageError(YedgeError):
    exit_code = EXIT_USAGE


class InputError(YedgeError):
    """An input file or folder is missing or not what the step needs."""

    exit_code = EXIT_INPUT


class EnvironmentProblem(YedgeError):
    """A toolchain, device or permission problem on this machine."""

    exit_code = EXIT_ENVIRONMENT


class AccuracyError(YedgeError):
    """Results out of tolerance (export parity, accuracy gates)."""

    exit_code = EXIT_ACCURACY


class Interrupted(YedgeError):
    """Ctrl-C: what was finished is kept (the message says what)."""

    exit_code = EXIT_INTERRUPTED


def _rebuild(cls, message, path, hint):
    return cls(message, path=path, hint=hint)
