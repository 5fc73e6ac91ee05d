"""The `yedge` command line (Typer): one function per command that parses its options, calls
its step and hands the result to the output sink (render.emit). Nothing else: the rules live in
the steps, the shared options in options.py, the rendering in render.py."""
# the modules register their commands in import order: the order --help lists them in
from . import build, run, check  # noqa: F401, I001
from .app import app, main

__all__ = ["app", "main"]
