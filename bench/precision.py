"""onnxruntime float32 against `yedge quantize`'s INT8 models (the default mix: backbone and
protonet INT8, FPN and heads float; and --all), same process, interleaved, batch 1.

    python bench/precision.py [--config yolact_edge_resnet50_config] [--layout head] [--repeat 7]

Prints the CPU, then per model: median ms per image, the ratio to float32, the file's size and
the worst output cosine quantize measured. A random checkpoint, calibrated on the bundled photos
(the weights' values do not change the cost).
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import onnxruntime as ort

from yolact_edge_cli.data.preprocess import prepare, read_image
from yolact_edge_cli.steps import export, quantize, random_weights
from yolact_edge_cli.workspace import Workspace

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return "unknown CPU"


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
        for path in (DATA / "astronaut.png", DATA / "coffee.png", export.SAMPLE_IMAGE):
            shutil.copy(path, photos / path.name)
        ws = Workspace(root / "ws")
        random_weights.run(root / "random.pth", config=args.config)
        export.run(ws, root / "random.pth", layout=args.layout)
        models = {"float32": (ws.default_onnx, None)}
        for name, options in (("int8 (default mix)", {}), ("int8 (--all)", {"quantize_all": True})):
            path = root / f"{len(models)}.onnx"
            result = quantize.run(ws, images=photos, output=path, min_cosine=-1.0, **options)
            models[name] = (path, result.worst_cosine)
        sessions = {name: ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
                    for name, (path, _) in models.items()}
        image = np.ascontiguousarray(prepare(read_image(DATA / "coffee.png"), "float32")[None])
        for session in sessions.values():  # warm-up
            session.run(None, {"image": image})
        times: dict[str, list[float]] = {name: [] for name in sessions}
        for _ in range(args.repeat):
            for name, session in sessions.items():
                started = time.perf_counter()
                session.run(None, {"image": image})
                times[name].append((time.perf_counter() - started) * 1000)
        base = statistics.median(times["float32"])
        print(f"{cpu_name()}, {os.cpu_count()} cores; {args.config}, {args.layout} layout, batch 1; "
              f"median of {args.repeat} interleaved runs")
        for name, (path, cosine) in models.items():
            ms = statistics.median(times[name])
            worst = "–" if cosine is None else f"{cosine:.5f}"
            print(f"  {name:<20} {ms:7.1f} ms  {ms / base:5.2f}×  {path.stat().st_size / 2**20:6.1f} MiB  "
                  f"worst cosine {worst}")


if __name__ == "__main__":
    main()
