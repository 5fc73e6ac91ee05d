"""The `yedge` command line: parses arguments, calls a step, prints its result. Nothing else."""
from __future__ import annotations

import functools
import sys
from pathlib import Path
from typing import Optional

import typer
from rich.table import Table

from . import __version__
from .console import err, out, print_json
from .errors import EXIT_FAILED, YedgeError
from .workspace import DEFAULT_WORKSPACE, Workspace

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
    def __init__(self, workspace: Path, json_output: bool, verbose: bool):
        self.workspace = Workspace(workspace)
        self.json = json_output
        self.verbose = verbose


def _version(value: bool) -> None:
    if value:
        out.print(f"yedge {__version__}")
        raise typer.Exit()


@app.callback()
def main_options(
    ctx: typer.Context,
    workspace: Path = typer.Option(DEFAULT_WORKSPACE, "--workspace", "-w", envvar="YEDGE_WORKSPACE",
                                   help="Folder shared by all steps (models, inputs, outputs, results)."),
    json_output: bool = typer.Option(False, "--json", help="Print the result as JSON on stdout."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Show tracebacks of internal errors."),
    version: Optional[bool] = typer.Option(None, "--version", callback=_version, is_eager=True,
                                           help="Print the version and exit."),
) -> None:
    ctx.obj = Settings(workspace, json_output, verbose)


def handles_errors(command):
    """The one error path: a YedgeError becomes one line on stderr (and JSON with --json) plus
    its exit code; anything unexpected says so briefly, with the traceback only under --verbose."""

    @functools.wraps(command)
    def wrapper(ctx: typer.Context, *args, **kwargs):
        settings: Settings = ctx.obj
        try:
            return command(ctx, *args, **kwargs)
        except YedgeError as exc:
            _fail(settings, exc.one_line(), exc.exit_code)
        except KeyboardInterrupt:
            _fail(settings, "interrupted; completed files are kept, rerun the step to resume", 130)
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - the last line of defence before a traceback
            if settings.verbose:
                raise
            _fail(settings, f"internal error: {type(exc).__name__}: {exc} (rerun with --verbose "
                            "for the traceback and report it)", EXIT_FAILED)

    return wrapper


def _fail(settings: Settings, line: str, code: int) -> None:
    err.print(f"[bold red]error:[/] {line}", highlight=False, soft_wrap=True)
    if settings.json:
        print_json({"error": line, "exit_code": code})
    raise typer.Exit(code)


def _kv_table(title: str, rows: dict) -> Table:
    table = Table(title=title, show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(key, str(value))
    return table


@app.command()
@handles_errors
def export(
    ctx: typer.Context,
    weights: Path = typer.Option(..., "--weights", help="YolactEdge/YOLACT .pth checkpoint (a state_dict)."),
    config: str = typer.Option("auto", "--config", help="Model config, or 'auto' to pick the one "
                               "whose keys the checkpoint has: yolact_edge_resnet50_config, "
                               "yolact_edge_config (ResNet-101), yolact_edge_mobilenetv2_config."),
    batch_size: int = typer.Option(1, "--batch-size", "-b", help="Static batch dimension."),
    dynamic_batch: bool = typer.Option(False, "--dynamic-batch", help="Make the batch dimension dynamic."),
    opset: int = typer.Option(11, "--opset", help="ONNX opset (11 is what atc accepts)."),
    layout: str = typer.Option("fpn", "--layout", help="'fpn': P3–P7 + proto, the Ascend recipe's "
                               "six outputs; 'head': loc/conf/mask/proto, heads on the device too."),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="Where to write the ONNX "
                                          "[default: WORKSPACE/models/yolact_edge.onnx]."),
    check_image: Optional[Path] = typer.Option(None, "--check-image", help="Image for the "
                                               "onnxruntime-vs-PyTorch check [default: bundled photo]."),
) -> None:
    """Export a checkpoint to ONNX, check it, and compare it with PyTorch on a real image."""
    from .steps import export as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, weights, config=config, batch_size=batch_size,
                      dynamic_batch=dynamic_batch, opset=opset, layout=layout, output=output,
                      check_image=check_image)
    if settings.json:
        print_json(result.to_dict())
        return
    io = Table(title=f"{result.onnx} — opset {result.opset}, {result.config}, {result.layout} layout",
               title_justify="left")
    for column in ("", "name", "shape", "dtype", "max |onnx − torch|"):
        io.add_column(column)
    for value in result.inputs:
        io.add_row("input", value["name"], str(value["shape"]), value["dtype"], "")
    for value in result.outputs:
        io.add_row("output", value["name"], str(value["shape"]), value["dtype"],
                   f"{result.max_abs_diff[value['name']]:.2e}")
    out.print(io)
    out.print(f"op types: {', '.join(result.op_types)}")
    out.print(f"exported in {result.seconds:.1f} s, peak memory {result.peak_rss_mb:.0f} MB")


@app.command("random-weights")
@handles_errors
def random_weights(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the .pth."),
    config: str = typer.Option("yolact_edge_resnet50_config", "--config", help="Model config."),
    seed: int = typer.Option(0, "--seed"),
    conf_gain: float = typer.Option(2.0, "--conf-gain", help="Gain of the class-score conv weights."),
    mask_bias: float = typer.Option(0.3, "--mask-bias", help="Added to the mask-coefficient bias."),
    bg_bias: float = typer.Option(0.0, "--bg-bias", help="Added to the background class bias."),
) -> None:
    """Write the deterministic random checkpoint (for demos and tests: its mAP is ≈ 0)."""
    from .steps import random_weights as step

    settings: Settings = ctx.obj
    result = step.run(output, config=config, seed=seed, conf_gain=conf_gain,
                      mask_bias=mask_bias, bg_bias=bg_bias)
    if settings.json:
        print_json(result)
    else:
        out.print(_kv_table("random checkpoint", result))


def main() -> None:
    app(prog_name="yedge")


if __name__ == "__main__":
    sys.exit(main())
