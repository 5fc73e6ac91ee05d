"""The one output sink: a command's result on stdout, as JSON (--json) or as tables for people,
as the `hf` CLI's `cli/_output.py` does. Steps return result objects; each kind's tables are
drawn here, keyed by the result's class name (so that printing needs no step, nor its torch or
onnx, imported), and cli.py only parses options, calls a step and hands its result to `emit`."""
from __future__ import annotations

import shlex
from collections.abc import Callable
from typing import Any

from rich.markup import escape
from rich.table import Table

from .console import err, out, print_json
from .model.config import SHOW_SCORE_THRESHOLD

_RENDERERS: dict[str, Callable[[Any], None]] = {}


def emit(result: Any, json_output: bool) -> None:
    """The result as one JSON document, or drawn by its kind's renderer."""
    if json_output:
        print_json(result if isinstance(result, dict) else result.to_dict())
    else:
        _RENDERERS[type(result).__name__](result)


def _renders(kind: str) -> Callable:
    def register(function: Callable[[Any], None]) -> Callable[[Any], None]:
        _RENDERERS[kind] = function
        return function

    return register


def kv_table(title: str, rows: dict) -> Table:
    table = Table(title=escape(title), show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column()
    for key, value in rows.items():
        table.add_row(escape(str(key)), escape(str(value)))  # paths may hold [...]
    return table


@_renders("dict")
def _random_checkpoint(result: dict) -> None:
    out.print(kv_table("random checkpoint", result))


@_renders("ExportResult")
def _export(result) -> None:
    graphs = [(result.onnx, result.inputs, result.outputs, result.max_abs_diff, result.op_types)]
    if result.non_keyframe:
        graph = result.non_keyframe
        graphs.append((graph["onnx"], graph["inputs"], graph["outputs"], graph["max_abs_diff"],
                       graph["op_types"]))
    for onnx, inputs, outputs, diffs, op_types in graphs:
        io = Table(title=escape(f"{onnx} — opset {result.opset}, {result.config}, {result.layout} layout"),
                   title_justify="left")
        for column in ("", "name", "shape", "dtype", "max |onnx − torch|"):
            io.add_column(column)
        for value in inputs:
            io.add_row("input", value["name"], str(value["shape"]), value["dtype"], "")
        for value in outputs:
            diff = diffs.get(value["name"])  # classes and count: matched, not measured
            io.add_row("output", value["name"], str(value["shape"]), value["dtype"],
                       "matched" if diff is None else f"{diff:.2e}")
        out.print(io)
        out.print(f"op types: {', '.join(op_types)}")
    out.print(f"exported in {result.seconds:.1f} s, peak memory {result.peak_rss_mb:.0f} MB")


@_renders("QuantizeResult")
def _quantize(result) -> None:
    table = Table(title=escape(f"{result.onnx} — INT8 ({result.method}), {result.quantized_convs} Conv "
                               f"quantized, {result.float_convs} float"), title_justify="left")
    for column in ("output", "cosine", "max |int8 − fp32|"):
        table.add_column(column)
    found = result.agreement
    for name, values in found.outputs.items():
        table.add_row(name, f"{values['cosine']:.5f}", f"{values['max_abs_diff']:.3g}")
    out.print(table)
    share = "no confident detections" if found.matched_share is None else f"{found.matched_share:.1%}"
    out.print(f"float32 detections ≥ {SHOW_SCORE_THRESHOLD} found by INT8: {found.matched} of "
              f"{found.float32_confident} "
              f"({share}); calibrated on {result.calibration_images}, checked on {result.check_images} "
              f"held-out image(s) in {result.seconds:.1f} s")
    if found.map_drop is not None:
        out.print(f"box mAP on the held-out images: float32 {found.map_float32:.2f}, INT8 {found.map_other:.2f}")


@_renders("PrepResult")
def _prep(result) -> None:
    rows = {"images": result.images, "written": result.written,
            "already there": result.skipped_existing, "dtype": f"{result.dtype} {result.layout}",
            "rate": f"{result.images_per_second} img/s", "folder": result.bin_dir}
    if result.bad:
        rows["left out (unreadable)"] = ", ".join(b["file"] for b in result.bad)
    if result.size_mismatches:
        rows["size differs from annotation"] = ", ".join(m["file"] for m in result.size_mismatches)
    out.print(kv_table("prep", rows))


@_renders("ConvertResult")
def _convert(result) -> None:
    if result.dry_run:
        for argv in result.argv:
            out.print(shlex.join(argv), markup=False, highlight=False, soft_wrap=True)
        return
    table = Table(title=f"atc → {result.soc_version}", title_justify="left")
    for column in ("model", "batch", "precision", "CANN"):
        table.add_column(column)
    for entry in result.models:
        dynamic = "dynamic " + ",".join(map(str, entry["dynamic_batch"]))
        batch = str(entry["batch_size"]) if entry["batch_size"] else dynamic
        mode = f"int8 (AMCT), {entry['precision_mode']}" if entry["quantized"] else entry["precision_mode"]
        table.add_row(escape(entry["om"]), batch, mode, entry["cann_version"] or "?")
    out.print(table)


@_renders("InferResult")
def _infer(result) -> None:
    out.print(kv_table("infer", {
        "run": result.run_dir, "backend": f"{result.backend} ({result.device}, {result.precision})",
        "model": result.model, "layout": result.layout, "batch": result.batch_size,
        "samples": f"{result.samples} ({result.computed} computed, {result.skipped_existing} already done)",
        "throughput": f"{result.throughput} img/s"}))


@_renders("PredictResult")
def _predict(result) -> None:
    out.print(kv_table("predict", {
        "output": result.output,
        "model": f"{result.model} ({result.backend} {result.precision}, {result.engine} engine)",
        "sources": result.sources, "images": result.images,
        "frames": result.frames if result.keyframes is None else f"{result.frames} ({result.keyframes} keyframes)",
        "detections": result.detections if result.tracks is None else f"{result.detections} ({result.tracks} tracks)",
        "speed": f"{result.fps} {'frames' if result.frames and not result.images else 'images'}/s "
                 f"({result.seconds} s)"}))


def predict_problems(result) -> None:
    """Predict's sources skipped or failed, on stderr, whatever the output format."""
    for skipped in result.skipped:
        err.print(f"skipped {escape(skipped['source'])}: {escape(skipped['reason'])}", highlight=False,
                  soft_wrap=True)
    for failure in result.failed:
        err.print(f"[yellow]failed[/] {escape(failure['source'])}: {escape(failure['reason'])}", highlight=False,
                  soft_wrap=True)


@_renders("EvalResult")
def _eval(result) -> None:
    from .metrics.coco_eval import STAT_NAMES
    from .metrics.yolact_ap import format_table

    images = f"{result.images} image{'s' if result.images != 1 else ''}"
    if result.keyframes is not None:
        images += (f" of {result.videos} video(s), a keyframe every {result.keyframe_interval} frames "
                   f"({result.keyframes} keyframes)")
    table = Table(title=f"COCOeval on {images} ({result.nms} NMS)", title_justify="left")
    table.add_column("metric")
    table.add_column("box", justify="right")
    table.add_column("mask", justify="right")
    for i, name in enumerate(STAT_NAMES):
        table.add_row(name, f"{result.coco['bbox']['stats'][i]:.3f}", f"{result.coco['segm']['stats'][i]:.3f}")
    out.print(table)
    out.print("YOLACT mAP (the Ascend recipe's metric):")
    out.print(format_table(result.yolact_ap), markup=False, soft_wrap=True)
    if result.print_per_class:
        _per_class(result.per_class)
    if result.output_dtype != "float32":
        out.print(f"outputs are {result.output_dtype} (an .om built with --output_type FP16); read as such")
    if result.missing:
        out.print(f"left out {len(result.missing)} image(s) without outputs")
    for bad in result.bad:
        out.print(f"left out {escape(bad['file'])}: {escape(bad['error'])}", highlight=False, soft_wrap=True)
    what = "streamed (read, model and host)" if result.streamed else "host post-processing"
    out.print(f"{what} {result.host_ms_per_image['wall']:.1f} ms/image; results in {escape(result.results_dir)}")
    if result.pictures:
        out.print(f"{len(result.pictures)} pictures (PR curves, per-class AP, confusion matrix, scores) in "
                  f"{escape(result.results_dir)}; all of it in one page: `yedge report`")


def _per_class(rows: list[dict]) -> None:
    """The classes with ground truth, most instances first."""
    table = Table(title="per-class AP (points; IoU 0.5:0.95 and 0.5)", title_justify="left")
    for column in ("class", "instances", "box AP", "box AP50", "mask AP", "mask AP50"):
        table.add_column(column, justify="left" if column == "class" else "right")
    from .metrics.curves import classes_with_truth

    for row in classes_with_truth(rows):
        table.add_row(escape(row["name"]), str(row["instances"]),
                      *(_num(row[k]) for k in ("box_AP", "box_AP50", "mask_AP", "mask_AP50")))
    out.print(table)


@_renders("ReportResult")
def _report(result) -> None:
    held = ", ".join(f"{key} {count}" for key, count in result.sections.items())
    out.print(f"wrote {escape(result.path)} ({result.bytes / 1e6:.1f} MB, {result.pictures} pictures; "
              f"tables and pictures per section: {held}); it opens in any browser, offline", soft_wrap=True)


@_renders("BenchResult")
def _bench(result) -> None:
    if result.mode == "precisions":
        _bench_precisions(result)
    elif result.mode != "inference":  # --stages and --stream: ms per stage
        out.print(kv_table(f"ms per image — {result.backend} ({result.device})",
                           {k: f"{v:.1f}" for k, v in result.stages_ms.items()}))
        if result.host_images_per_s:
            out.print(kv_table("host part, images/s sustained",
                               {k: f"{v:.1f}" for k, v in result.host_images_per_s.items()}))
        return
    else:
        _bench_rows(result)
        if result.video:
            _bench_video(result.video)
    for line in result.skipped:
        err.print(f"[yellow]skipped[/] {escape(line)}")


def _num(value: float | None) -> str:
    return "—" if value is None else f"{value:.1f}"


def _bench_rows(result) -> None:
    table = Table(title=escape(f"{result.backend} ({result.device}) — {result.model}"), title_justify="left")
    copies = any(row.h2d_mean_ms is not None or row.d2h_mean_ms is not None for row in result.rows)
    for column in ("batch", "loops", "img/s", "mean ms", "p50 ms", "p90 ms", "p99 ms",
                   *(("H2D ms", "D2H ms") if copies else ())):
        table.add_column(column, justify="right")
    for row in result.rows:
        table.add_row(str(row.batch_size), str(row.loops), f"{row.throughput:.1f}",
                      _num(row.latency_mean_ms), _num(row.latency_p50_ms), _num(row.latency_p90_ms),
                      _num(row.latency_p99_ms), *((_num(row.h2d_mean_ms), _num(row.d2h_mean_ms)) if copies else ()))
    out.print(table)


def _bench_video(video: dict) -> None:
    out.print(kv_table("video model (batch 1)", {
        "keyframe": f"{video['keyframe_ms']:.1f} ms",
        "non-keyframe": f"{video['non_keyframe_ms']:.1f} ms ({video['ratio']:.2f} of a keyframe)",
        f"keyframe every {video['interval']}": f"{video['frames_per_s']:.2f} frames/s over {video['frames']} "
                                               f"frames ({video['keyframes']} of them keyframes)",
        "every frame a keyframe": f"{video['every_frame_key_per_s']:.2f} frames/s"}))


def _bench_precisions(result) -> None:
    from .precision import cpu_isa

    sizes = sorted({row.batch_size for entry in result.precisions for row in entry.rows})
    table = Table(title=escape(f"speed and agreement with onnxruntime fp32 ({result.device}; "
                               f"{', '.join(cpu_isa()) or 'no AVX2'}; {result.check_images} image(s) compared)"),
                  title_justify="left")
    for column in ("backend", "precision", "MB", *(f"img/s b{b}" for b in sizes), "p50 ms", "p99 ms",
                   "cosine", "matched", "mAP"):
        table.add_column(column, justify="left" if column in ("backend", "precision") else "right")
    for entry in result.precisions:
        if entry.status != "ok":
            table.add_row(entry.backend, entry.precision, "[yellow]refused[/]" if entry.status == "refused"
                          else "[red]failed[/]")
            continue
        rates = {row.batch_size: row for row in entry.rows}
        first = entry.rows[0] if entry.rows else None
        agreement = entry.agreement or {}
        share, found_map = agreement.get("matched_share"), agreement.get("map_other")
        table.add_row(entry.backend, entry.precision, f"{entry.size_mb:.0f}",
                      *(f"{rates[b].throughput:.1f}" if b in rates else "—" for b in sizes),
                      _num(first.latency_p50_ms if first else None), _num(first.latency_p99_ms if first else None),
                      f"{agreement['worst_cosine']:.5f}" if agreement else "—",
                      "—" if share is None else f"{share:.1%}", "—" if found_map is None else f"{found_map:.2f}")
    out.print(table)
    for entry in result.precisions:
        if entry.reason:
            err.print(f"{entry.status} {entry.backend} {entry.precision}: {escape(entry.reason)}",
                      highlight=False, soft_wrap=True)


@_renders("DoctorResult")
def _doctor(result) -> None:
    marks = {"ok": "[green]✓[/]", "warn": "[yellow]![/]", "fail": "[red]✗[/]"}
    for check in result.checks:
        fix = f" — {check.fix}" if check.fix and check.status != "ok" else ""
        out.print(f"{marks[check.status]} {check.area:11s} {check.name}: {escape(check.detail + fix)}",
                  soft_wrap=True, highlight=False)


@_renders("CompareResult")
def _compare(result) -> None:
    table = Table(title=escape(f"{result.a} vs {result.b} on {result.samples} inputs"), title_justify="left")
    for column in ("output", "max |Δ|", "max rel", "cosine", ""):
        table.add_column(column, justify="right")
    for o in result.outputs:
        table.add_row(o.name, f"{o.max_abs:.2e}", f"{o.max_rel:.2e}", f"{o.cosine:.6f}",
                      "✓" if o.within_tolerance else "✗")
    out.print(table)
    d = result.detections
    out.print(f"detections: A {d['a']}, B {d['b']}, matched {d['matched']}; mean box IoU "
              f"{d['mean_box_iou']:.4f}, mean mask IoU {d['mean_mask_iou']:.4f}")


@_renders("ShowResult")
def _show(result) -> None:
    for picture in result.pictures:
        out.print(picture, highlight=False)
    out.print(f"contact sheet: {escape(result.contact_sheet)} ({result.detections_drawn} detections drawn)",
              highlight=False)
