"""Reduced precision side by side, in one process: onnxruntime and OpenVINO, fp32 / bf16 / fp16 /
int8, the INT8 files of `yedge quantize` (onnxruntime's quantizer; the default mix — backbone
and protonet INT8, FPN and heads float — and --all) and, where NNCF is installed, NNCF's ONNX
quantizer on the same images with the same float layers. Batch 1, interleaved runs.

    python bench/precision.py [--config yolact_edge_resnet50_config] [--layout head] [--repeat 7]

Prints the CPU and its reduced-precision instructions, then per (runtime, precision, file):
median ms per image, the ratio to onnxruntime fp32, the file's size, the worst output cosine to
onnxruntime fp32 on a held-out photo and the share of fp32's detections ≥ 0.3 it finds again.
The checkpoint is random but confident (--conf-gain 4 --bg-bias 14: a few clear detections per
photo, not a hundred around the threshold), calibrated on the bundled photos but the held-out one.
Sessions are yedge's own (backends.open_session), as `--backend/--precision` make them.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from yolact_edge_cli.backends import open_session
from yolact_edge_cli.data.preprocess import prepare, read_image
from yolact_edge_cli.host import HostPipeline
from yolact_edge_cli.metrics.agreement import Agreement
from yolact_edge_cli.model.contract import output_names
from yolact_edge_cli.precision import cpu_isa, runs_here
from yolact_edge_cli.resolve import host_spec
from yolact_edge_cli.steps import export, quantize, random_weights
from yolact_edge_cli.steps.quantize import DEFAULT_KEEP_FLOAT
from yolact_edge_cli.workspace import Workspace

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
CONFIDENT = {"conf_gain": 4.0, "bg_bias": 14.0}


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


def nncf_int8(source: Path, dest: Path, photos: list[Path], keep_float: bool) -> Path:
    """NNCF's post-training quantization of the same ONNX on the same photos; the FPN and heads
    left float (its ignored scope) unless `keep_float` is False."""
    import nncf
    import onnx

    model = onnx.load(str(source))
    data = nncf.Dataset([prepare(read_image(p), "float32")[None] for p in photos], lambda x: {"image": x})
    patterns = [p.strip("*") for p in DEFAULT_KEEP_FLOAT]
    scope = nncf.IgnoredScope(patterns=[f".*{p}.*" for p in patterns], validate=False) if keep_float else None
    quantized = nncf.quantize(model, data, subset_size=len(photos), ignored_scope=scope) if scope else \
        nncf.quantize(model, data, subset_size=len(photos))
    onnx.save(quantized, str(dest))
    return dest


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="yolact_edge_resnet50_config")
    parser.add_argument("--layout", default="head")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        photos = root / "photos"
        photos.mkdir()
        for path in (DATA / "astronaut.png", export.SAMPLE_IMAGE):  # coffee.png is held out
            shutil.copy(path, photos / path.name)
        held_out = DATA / "coffee.png"
        ws = Workspace(root / "ws")
        random_weights.run(root / "random.pth", config=args.config, **CONFIDENT)
        export.run(ws, root / "random.pth", export.ExportOptions(layout=args.layout))
        files = {"fp32": ws.default_onnx}
        for name, options in (("ort int8 mix", {}), ("ort int8 all", {"quantize_all": True})):
            files[name] = root / f"{name.replace(' ', '_')}.onnx"
            quantize.run(ws, quantize.QuantizeOptions(images=photos, output=files[name], min_cosine=-1.0, **options))
        if importlib.util.find_spec("nncf"):
            calibration = sorted(photos.iterdir())
            files["nncf int8 mix"] = nncf_int8(ws.default_onnx, root / "nncf_mix.onnx", calibration, True)
            files["nncf int8 all"] = nncf_int8(ws.default_onnx, root / "nncf_all.onnx", calibration, False)
        rows = [("onnxruntime", "fp32", "fp32")]
        rows += [("onnxruntime", "int8", name) for name in files if "int8" in name]
        rows += [("openvino", p, "fp32") for p in ("fp32", "bf16", "fp16") if runs_here("openvino", "cpu", p)]
        rows += [("openvino", "int8", name) for name in files if "int8" in name]
        sessions = {row: open_session(files[row[2]], backend=row[0], precision=row[1], layout=args.layout)
                    for row in rows}
        image = np.ascontiguousarray(prepare(read_image(held_out), "float32")[None])
        outputs = {row: session.run(image) for row, session in sessions.items()}  # and warm-up
        times: dict[tuple, list[float]] = {row: [] for row in rows}
        for _ in range(args.repeat):
            for row, session in sessions.items():
                started = time.perf_counter()
                session.run(image)
                times[row].append((time.perf_counter() - started) * 1000)
        pipeline = HostPipeline(host_spec(ws, args.layout))
        height, width = read_image(held_out).shape[:2]
        base = statistics.median(times[rows[0]])
        print(f"{cpu_name()}, {os.cpu_count()} cores ({', '.join(cpu_isa())}); {args.config}, {args.layout} "
              f"layout, batch 1; median of {args.repeat} interleaved runs")
        print("| runtime | precision | file | ms | ratio | MiB | worst cosine | fp32 detections ≥ 0.3 found |")
        print("|---|---|---|---|---|---|---|---|")
        for row in rows:
            agreement = Agreement(pipeline, output_names(args.layout))
            agreement.add(outputs[rows[0]], outputs[row], width, height)
            found = agreement.finish()
            ms = statistics.median(times[row])
            share = "–" if found.matched_share is None else f"{found.matched:d}/{found.float32_confident:d}"
            print(f"| {row[0]} | {row[1]} | {row[2]} | {ms:.1f} | {ms / base:.3f} | "
                  f"{files[row[2]].stat().st_size / 2**20:.1f} | {found.worst_cosine:.5f} | {share} |")


if __name__ == "__main__":
    main()
