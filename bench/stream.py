"""Benchmarks of the local engine (stream.local.LocalEngine: `yedge predict`, `yedge eval --images`).

  overlap  A session that sleeps d ms per batch and a host part that sleeps h ms per image (both
           stand-ins, so the stage costs are known): the wall time per image against
           max(d / batch, h / W, preprocess / W), for d/batch ≈ h/W and for d/batch ≫ h/W.
  memory   Peak RSS of streaming eval on N synthetic images (64×48 PNGs with annotations; a
           stand-in head-layout session giving a few detections each, the real host part and
           COCOeval image by image), each N in a fresh process: 200 vs 2,000 should differ little.
  disk     Bytes written by streaming eval vs prep → infer → eval on the same images (the real
           exported model, onnxruntime).
  predict  Images/s of `yedge predict` vs `yedge infer` (+ prep) on the same images, onnxruntime,
           for the fpn layout (the heads on the host) and the detect layout (masks only).

    .venv/bin/python bench/stream.py overlap|memory|disk|predict [--images N] [--layouts fpn,detect]
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from yolact_edge_cli.backends import ModelInfo
from yolact_edge_cli.host import HostSpec
from yolact_edge_cli.metrics.results import Detections
from yolact_edge_cli.model.contract import output_shapes
from yolact_edge_cli.stream import local, stages
from yolact_edge_cli.stream.items import Item

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
HEAD = ("loc", "conf", "mask", "proto")


class SleepSession:
    """d ms per batch, whatever its size, like a device whose time does not depend on the host."""

    def __init__(self, milliseconds: float, outputs=None):
        self.seconds = milliseconds / 1000
        self.outputs = outputs
        self.info = ModelInfo(batch_size=None, input_dtype="float32", layout="head", output_names=HEAD)
        self.device = "sleep"

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        time.sleep(self.seconds)
        if self.outputs is not None:
            return [np.repeat(o, len(batch), axis=0) for o in self.outputs]
        return [np.zeros((len(batch), 1), np.float32)]

    def close(self) -> None:
        pass


@dataclasses.dataclass(frozen=True)
class SleepRecipe:
    """Opens a SleepSession where an engine opens its replicas' sessions (a SessionRecipe's part)."""

    milliseconds: float
    outputs: tuple | None = None
    batch_size: int | None = None
    device: str = "cpu"
    choice: object = dataclasses.field(default_factory=lambda: type("Choice", (), {"backend": "onnxruntime"})())

    def on(self, device: str) -> SleepRecipe:
        return dataclasses.replace(self, device=device)

    def open(self) -> SleepSession:
        return SleepSession(self.milliseconds, None if self.outputs is None else list(self.outputs))

    open_in_worker = open


HOST_SECONDS = 0.0


def sleeping_post(spec, outputs, width, height):
    """Stands in for the host part (stages.post) in forked workers: h ms, no detections."""
    time.sleep(HOST_SECONDS)
    empty = np.zeros((0,))
    return Detections(np.zeros((0, 4)), empty, empty, []), {"host": HOST_SECONDS}


def overlap(count: int) -> None:
    global HOST_SECONDS
    local.post = sleeping_post  # forked workers inherit the stand-in
    frame = np.full((48, 64, 3), 128, np.uint8)
    t = time.perf_counter()
    for _ in range(20):
        stages.prepare_item(Item(0, "x", 0, pixels=frame), stages.PrepareSpec("float32", "nchw", False))
    prep_ms = (time.perf_counter() - t) / 20 * 1000
    print(f"preprocess alone {prep_ms:.1f} ms/image; {count} images per case; W = 2 workers per pool")
    print("case                       d/batch  h/W  prep/W  bound   wall/image  wall/bound")
    for label, batch, device_ms, host_ms in (("d/batch ≈ h/W", 4, 200.0, 100.0),
                                            ("d/batch ≫ h/W", 4, 400.0, 20.0),
                                            ("h/W ≫ d/batch", 4, 40.0, 200.0)):
        HOST_SECONDS = host_ms / 1000
        items = (Item(i, "synthetic", i, pixels=frame) for i in range(count))
        started = time.perf_counter()
        with local.LocalEngine(workers=2).open(SleepRecipe(device_ms, batch_size=batch),
                                               lambda info: HostSpec(layout="head")) as run:
            for _ in run.predictions(items):
                pass
        wall = (time.perf_counter() - started) / count * 1000
        bound = max(device_ms / batch, host_ms / 2, prep_ms / 2)
        print(f"{label:26s} {device_ms / batch:7.1f} {host_ms / 2:5.1f} {prep_ms / 2:6.1f} {bound:6.1f} "
              f"{wall:10.1f}  {wall / bound:9.2f}")


def synthetic_set(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    images, annotations = [], []
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:06d}.png"), rng.integers(0, 256, (48, 64, 3), dtype=np.uint8))
        images.append({"id": i + 1, "file_name": f"{i:06d}.png", "width": 64, "height": 48})
        annotations.append({"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "area": 400,
                            "bbox": [10, 10, 20, 20], "segmentation": [[10, 10, 30, 10, 30, 30, 10, 30]]})
    path = folder.parent / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


def head_outputs() -> list[np.ndarray]:
    """Head-layout outputs with five confident detections (class 1) and background elsewhere."""
    shapes = output_shapes("head")
    loc, mask, proto = (np.zeros((1, *shapes[n]), np.float32) for n in ("loc", "mask", "proto"))
    conf = np.zeros((1, *shapes["conf"]), np.float32)
    conf[0, :, 0] = 1.0
    for k, prior in enumerate((100, 3000, 9000, 15000, 19000)):
        conf[0, prior, 0], conf[0, prior, 1] = 0.1, 0.9 - 0.01 * k
    proto[:] = 1.0
    mask[:] = 0.5
    return [loc, conf, mask, proto]


def memory_one(count: int, fast_eval: bool) -> None:
    """One streaming eval in this process; prints its peak RSS (this process and its workers),
    also as it was when the stream ended, before COCOeval's final step ran (accumulate over the
    images evaluated one by one; with faster-coco-eval, all of it over the result files)."""
    from yolact_edge_cli.metrics import coco_eval
    from yolact_edge_cli.steps import evaluate
    from yolact_edge_cli.workspace import Workspace

    streamed: list[float] = []

    def measured(function):
        def call(*args, **kwargs):
            streamed.append(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)
            return function(*args, **kwargs)
        return call

    if fast_eval:
        coco_eval.evaluate = measured(coco_eval.evaluate)  # type: ignore[assignment]
    else:
        coco_eval.ImageByImage.stats = measured(coco_eval.ImageByImage.stats)  # type: ignore[method-assign]

    root = Path(tempfile.mkdtemp(prefix="stream_memory_"))
    annotations = synthetic_set(root / "images", count)
    stages.session_for = lambda choice, **_: SleepSession(1.0, head_outputs())  # type: ignore[assignment]
    model = root / "stand-in.onnx"
    model.write_bytes(b"")
    ws = Workspace(root / "ws")
    options = evaluate.EvalOptions(annotations=annotations, workers=2, fast_eval=fast_eval)
    evaluate.run_streaming(ws, root / "images", options, evaluate.StreamOptions(model=model))
    own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    workers = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
    print(json.dumps({"images": count, "fast_eval": fast_eval, "peak_rss_mb_at_stream_end": round(streamed[0], 1),
                      "peak_rss_mb": round(own, 1), "worker_peak_rss_mb": round(workers, 1)}))
    shutil.rmtree(root, ignore_errors=True)


def memory(counts: list[int], fast_eval: bool) -> None:
    for count in counts:
        proc = subprocess.run([sys.executable, __file__, "memory-one", "--images", str(count),
                               *(["--fast-eval"] if fast_eval else [])], capture_output=True, text=True)
        lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
        print(lines[-1] if lines else proc.stderr[-2000:])


def _tree_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def _workflow(root: Path, count: int, layout: str = "fpn") -> tuple[Path, Path, Path]:
    from yolact_edge_cli.steps import export, random_weights
    from yolact_edge_cli.workspace import Workspace

    photos = [cv2.resize(cv2.imread(str(DATA / n)), (640, 480)) for n in ("astronaut.png", "coffee.png")]
    folder = root / "images"
    folder.mkdir(parents=True)
    annotations = synthetic_set(root / "unused", count)
    data = json.loads(annotations.read_text())
    for i, image in enumerate(data["images"]):
        image.update(width=640, height=480)
        cv2.imwrite(str(folder / image["file_name"]), np.roll(photos[i % 2], 13 * i, axis=1))
    annotations.write_text(json.dumps(data))
    random_weights.run(root / "weights.pth")
    ws = Workspace(root / "ws")
    export.run(ws, root / "weights.pth", export.ExportOptions(layout=layout))
    return folder, annotations, ws.root


def disk(count: int) -> None:
    from yolact_edge_cli.steps import evaluate, infer, prep
    from yolact_edge_cli.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="stream_disk_"))
    folder, annotations, ws_root = _workflow(root, count)
    streamed = Workspace(root / "streamed")
    shutil.copytree(ws_root, streamed.root)
    base = _tree_bytes(streamed.root)
    evaluate.run_streaming(streamed, folder, evaluate.EvalOptions(annotations=annotations),
                           evaluate.StreamOptions(model=streamed.default_onnx))
    stream_bytes = _tree_bytes(streamed.root) - base
    ws = Workspace(ws_root)
    base = _tree_bytes(ws.root)
    prep.run(ws, folder, annotations)
    infer.run(ws, infer.InferOptions(backend="onnxruntime"))
    evaluate.run(ws)
    files_bytes = _tree_bytes(ws.root) - base
    print(f"{count} images: streaming eval wrote {stream_bytes / 1e6:.2f} MB; prep → infer → eval wrote "
          f"{files_bytes / 1e6:.2f} MB ({files_bytes / count / 1e6:.2f} MB per image)")
    shutil.rmtree(root, ignore_errors=True)


def predict_vs_infer(count: int, layout: str) -> None:
    from yolact_edge_cli.steps import evaluate, infer, predict, prep
    from yolact_edge_cli.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="stream_predict_"))
    folder, annotations, ws_root = _workflow(root, count, layout)
    ws = Workspace(ws_root)
    started = time.perf_counter()
    prep.run(ws, folder, annotations)
    prepped = time.perf_counter()
    infer.run(ws, infer.InferOptions(backend="onnxruntime"))
    inferred = time.perf_counter()
    evaluate.run(ws, evaluate.EvalOptions(score_threshold=0.3))
    evaluated = time.perf_counter()
    result = predict.run(ws, [str(folder)], predict.PredictOptions(backend="onnxruntime", save_images=False,
                                                                   score_threshold=0.3))
    done = time.perf_counter()
    print(f"{layout} layout, {count} images, onnxruntime CPU, img/s: prep {count / (prepped - started):.2f}, infer "
          f"{count / (inferred - prepped):.2f}, eval (host + COCOeval) {count / (evaluated - inferred):.2f}, "
          f"prep + infer + eval {count / (evaluated - started):.2f}; predict (decode, model, host, JSONL) "
          f"{count / (done - evaluated):.2f} (its own count: {result.fps})")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("overlap", "memory", "memory-one", "disk", "predict"))
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--fast-eval", action="store_true", help="memory: COCOeval by faster-coco-eval")
    parser.add_argument("--layouts", default="fpn,detect", help="predict: the export layouts to compare")
    args = parser.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(os.cpu_count() or 1))
    if args.what == "overlap":
        overlap(args.images or 40)
    elif args.what == "memory":
        memory([args.images] if args.images else [200, 2000], args.fast_eval)
    elif args.what == "memory-one":
        memory_one(args.images or 200, args.fast_eval)
    elif args.what == "disk":
        disk(args.images or 8)
    else:
        for layout in args.layouts.split(","):
            predict_vs_infer(args.images or 8, layout)


if __name__ == "__main__":
    main()
