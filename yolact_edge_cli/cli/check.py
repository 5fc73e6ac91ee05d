"""The commands that look at what was made: doctor, compare, show, report; and random-weights."""
from __future__ import annotations

from pathlib import Path

import typer

from ..choices import Backend, Precision
from ..model.config import DEFAULT_CONFIG, RANDOM_BG_BIAS, RANDOM_CONF_GAIN, RANDOM_MASK_BIAS
from ..options import NumImages, ScoreThreshold, flag, parse_ints
from ..render import emit
from ..steps.compare import CompareOptions
from ..steps.show import ShowOptions
from .app import Settings, command, emit_then_fail, failure


@command()
def doctor(
    ctx: typer.Context,
    ray_address: str | None = typer.Option(None, "--ray-address", help="A Ray cluster to check: its "
                                           "live nodes and their resources \\[default: RAY_ADDRESS; "
                                           "unset: no cluster is checked]."),
) -> None:
    """Check this machine (Python, torch/CUDA, onnxruntime, pycocotools, Ray and its cluster,
    CANN, atc, npu-smi, ais_bench) and the workspace (steps done, stale artifacts)."""
    from ..steps import doctor as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, ray_address)
    emit(result, settings.json)
    raise typer.Exit(result.exit_code)


@command(locks=True)
def compare(
    ctx: typer.Context,
    a: Path = typer.Argument(..., help="A model (.onnx, .pth, .om) or an outputs/<run> folder."),
    b: Path = typer.Argument(..., help="The reference to compare A with (same kinds)."),
    num_inputs: int = typer.Option(CompareOptions.inputs, "--num-inputs", min=1,
                                   help="How many prepared inputs to compare on."),
    atol: float = typer.Option(CompareOptions.atol, "--atol", min=0.0, help="Allowed absolute difference per output."),
    rtol: float = typer.Option(CompareOptions.rtol, "--rtol", min=0.0, help="Plus this times B's largest magnitude."),
    a_backend: Backend = typer.Option(Backend.AUTO, "--a-backend", show_default=False, help="What runs model A, "
                                      "e.g. openvino for an .onnx \\[default: by its suffix]."),
    a_precision: Precision | None = typer.Option(None, "--a-precision", show_default=False, help="Model A's "
                                                 "precision \\[default: its own: fp32, int8 for a QDQ .onnx, an "
                                                 ".om's as converted]."),
    b_backend: Backend = typer.Option(Backend.AUTO, "--b-backend", show_default=False, help="What runs model B "
                                      "\\[default: by its suffix]."),
    b_precision: Precision | None = typer.Option(None, "--b-precision", show_default=False, help="Model B's "
                                                 "precision \\[default: its own]."),
) -> None:
    """Compare two models or runs: per-output errors and cosine, matched detections and IoUs
    (exit 5 over tolerance). E.g. one .onnx in OpenVINO bf16 against onnxruntime fp32:
    `yedge compare M.onnx M.onnx --a-backend openvino --a-precision bf16`."""
    from ..steps import compare as step

    settings: Settings = ctx.obj
    runners = [step.Runner(None if backend == Backend.AUTO else backend.value, precision.value if precision else None)
               for backend, precision in ((a_backend, a_precision), (b_backend, b_precision))]
    result = step.run(settings.workspace, a, b, CompareOptions(inputs=num_inputs, atol=atol, rtol=rtol,
                                                               runner_a=runners[0], runner_b=runners[1]))
    emit_then_fail(settings, result, failure(lambda: step.check(result, atol, rtol)))


@command(locks=True)
def show(
    ctx: typer.Context,
    num_images: NumImages = ShowOptions.images,
    ids: str | None = typer.Option(None, "--ids", help="Comma list of COCO image ids instead."),
    score_threshold: ScoreThreshold = ShowOptions.score_threshold,
    gt: bool = flag("--gt", help="Ground truth beside each picture."),
    output: Path | None = typer.Option(None, "--output", "-o", help="Folder \\[default: results/vis]."),
) -> None:
    """Draw detections (masks, boxes, classes, scores) on the images as PNGs, plus a contact sheet."""
    from ..steps import show as step

    settings: Settings = ctx.obj
    result = step.run(settings.workspace, ShowOptions(images=num_images, ids=parse_ints(ids, "--ids") if ids else None,
                                                      score_threshold=score_threshold, gt=gt, out=output))
    emit(result, settings.json)


@command()  # reads what the steps wrote atomically; the page is written atomically too
def report(
    ctx: typer.Context,
    no_doctor: bool = flag("--no-doctor", help="Leave out doctor's checks of this machine."),
) -> None:
    """Write results/report.html: one self-contained page (no network needed) with the models and
    their provenance, every eval run with its tables and pictures, bench and compare runs side by
    side, show's contact sheet and doctor's findings."""
    from ..steps import doctor
    from ..steps import report as step

    settings: Settings = ctx.obj
    checks = None if no_doctor else doctor.run(settings.workspace).to_dict()
    emit(step.run(settings.workspace, checks), settings.json)


@command("random-weights", interrupted="interrupted; nothing was written: rerun it")
def random_weights(
    ctx: typer.Context,
    output: Path = typer.Option(..., "--output", "-o", help="Where to write the .pth."),
    config: str = typer.Option(DEFAULT_CONFIG, "--config", help="Model config."),
    seed: int = typer.Option(0, "--seed", min=0, help="Seed of every key's generator."),
    conf_gain: float = typer.Option(RANDOM_CONF_GAIN, "--conf-gain", help="Gain of the class-score conv weights."),
    mask_bias: float = typer.Option(RANDOM_MASK_BIAS, "--mask-bias", help="Added to the mask-coefficient bias."),
    bg_bias: float = typer.Option(RANDOM_BG_BIAS, "--bg-bias", help="Added to the background class bias."),
) -> None:
    """Write the deterministic random checkpoint (for demos and tests: its mAP is ≈ 0)."""
    from ..steps import random_weights as step

    settings: Settings = ctx.obj
    result = step.run(output, config=config, seed=seed, conf_gain=conf_gain,
                      mask_bias=mask_bias, bg_bias=bg_bias)
    emit(result, settings.json)
