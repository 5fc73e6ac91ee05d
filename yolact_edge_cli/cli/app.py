"""The `yedge` app: its global options, how a command is registered (--json after its name,
the workspace lock, Ctrl-C), and the one error boundary that maps failures to exit codes."""
from __future__ import annotations

import functools
import inspect
import signal
import sys
from collections.abc import Callable
from contextvars import ContextVar
from pathlib import Path

import typer
from rich.markup import escape

from .. import __version__
from ..console import err, out, print_json
from ..errors import Interrupted, UsageError, YedgeError
from ..options import JsonFlag, flag
from ..render import emit
from ..workspace import DEFAULT_WORKSPACE, Workspace

app = typer.Typer(
    name="yedge",
    help="YolactEdge from a PyTorch checkpoint to measured accuracy and speed, on an Ascend NPU "
         "or anywhere else. Steps share one workspace folder: export → prep → convert → infer → "
         "eval → bench.",
    no_args_is_help=True,
    rich_markup_mode="rich",
    context_settings={"help_option_names": ["-h", "--help"]},
)


class Settings:
    """The global options of one invocation."""

    def __init__(self, workspace: Path, json_output: bool, verbose: bool):
        self.workspace = Workspace(workspace)
        self.json = json_output
        self.verbose = verbose


_settings: ContextVar[Settings | None] = ContextVar("yedge_settings", default=None)

def _version(value: bool) -> None:
    if value:
        out.print(f"yedge {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    workspace: Path = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", envvar="YEDGE_WORKSPACE",
                                   help="Folder shared by all steps (models, inputs, outputs, results)."),
    json_output: JsonFlag = False,
    verbose: bool = flag("--verbose", "-v", help="Show tracebacks of internal errors."),
    version: bool | None = typer.Option(None, "--version", metavar="", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    ctx.obj = Settings(workspace, json_output, verbose)
    _settings.set(ctx.obj)
    if workspace.exists() and not workspace.is_dir():
        raise UsageError("the workspace is a file, not a folder", path=workspace,
                         hint="pass -w with a folder (it is created if missing)")


RESUMABLE = "interrupted; completed files are kept, rerun the step to resume"


def command(name: str | None = None, *, locks: bool = False, interrupted: str = RESUMABLE) -> Callable:
    """Register a command. Every command also takes --json after its name (`yedge eval --json`
    as well as `yedge --json eval`); those that write into the workspace (`locks`) hold its
    lock; Ctrl-C ends it with `interrupted` (what is kept). Failures go to the one error
    boundary, `main`."""

    def register(function: Callable) -> Callable:
        @functools.wraps(function)
        def wrapper(ctx: typer.Context, *args, json_output: bool = False, **kwargs):
            settings: Settings = ctx.obj
            settings.json = settings.json or json_output
            try:
                if not locks:
                    return function(ctx, *args, **kwargs)
                with settings.workspace.lock():
                    return function(ctx, *args, **kwargs)
            except KeyboardInterrupt:
                raise Interrupted(interrupted) from None

        signature = inspect.signature(function, eval_str=True)
        flag = inspect.Parameter("json_output", inspect.Parameter.KEYWORD_ONLY, default=False,
                                 annotation=JsonFlag)
        wrapper.__signature__ = signature.replace(  # type: ignore[attr-defined]
            parameters=[*signature.parameters.values(), flag])
        wrapper.__annotations__ = {**inspect.get_annotations(function, eval_str=True),
                                   "json_output": JsonFlag}
        return app.command(name)(wrapper)

    return register


def _error_line(error: YedgeError) -> str:
    """The one `error:` line on stderr; returns its text."""
    line = error.one_line()
    # escaped: paths and the tools' own lines hold [...] that Rich would take for style tags
    err.print(f"[bold red]error:[/] {escape(line)}", highlight=False, soft_wrap=True)
    return line


def _report(error: YedgeError) -> int:
    """One line on stderr (and JSON on stdout with --json); the exit code to end with."""
    line = _error_line(error)
    settings = _settings.get()
    if settings is not None and settings.json:
        print_json({"error": line, "exit_code": error.exit_code})
    return error.exit_code


def failure(check: Callable[[], None]) -> YedgeError | None:
    """What a result's gate (exit 5 and the like) says of it, or None when it passes."""
    try:
        check()
    except YedgeError as failed:
        return failed
    return None


def emit_then_fail(settings: Settings, result, failed: YedgeError | None,
                    then: Callable[[], None] = lambda: None) -> None:
    """The result, then its failure if any: with --json one document holding the error's keys
    too (stdout stays one JSON value), and the `error:` line on stderr either way."""
    if settings.json and failed:
        emit(result.to_dict() | {"error": failed.one_line(), "exit_code": failed.exit_code}, True)
    else:
        emit(result, settings.json)
    then()
    if failed is None:
        return
    if settings.json:  # the JSON already holds the error: the line only
        _error_line(failed)
        raise typer.Exit(failed.exit_code)
    raise failed


def _ignore_further_interrupts() -> None:
    """The interruption is reported and what it left is cleaned up; while the interpreter then
    shuts down (joining pools whose workers finish their current item) Python puts SIGINT back
    to its default, and a late Ctrl-C would end the process by the signal (exit −2) instead of
    130. Ignored from here on, it cannot."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)


def main() -> None:
    """The one error boundary. A YedgeError (a command's, or a usage error found while parsing:
    unknown option, value out of range, not one of the choices) ends as one `error:` line with
    its exit code; anything unexpected says so briefly, with the traceback only under --verbose."""
    from typer._click import exceptions as click_errors

    _settings.set(None)
    try:
        code = app(prog_name="yedge", standalone_mode=False)
    except click_errors.NoArgsIsHelpError as exc:
        exc.show()
        code = exc.exit_code
    except click_errors.UsageError as exc:
        where = exc.ctx.command_path if exc.ctx else "yedge"
        code = _report(UsageError(exc.format_message(), hint=f"see `{where} --help`"))
    except click_errors.ClickException as exc:
        exc.show()
        code = exc.exit_code
    except YedgeError as exc:
        code = _report(exc)
        if isinstance(exc, Interrupted):
            _ignore_further_interrupts()
    except typer.Abort:
        code = Interrupted.exit_code
        _ignore_further_interrupts()
    except Exception as exc:  # noqa: BLE001 - the last line of defence before a traceback
        settings = _settings.get()
        if settings is not None and settings.verbose:
            raise
        code = _report(YedgeError(f"internal error: {type(exc).__name__}: {exc} (rerun with "
                                  "--verbose for the traceback and report it)"))
    sys.exit(code or 0)
