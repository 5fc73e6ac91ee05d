"""Benchmarks of --engine ray (stream.ray_engine.RayEngine).

  scaling   Replicas of a session that sleeps d ms per batch (so the cores are not what bounds
            it; each replica reserves no CPU), on a local Ray cluster: wall images/s with 1, 2,
            4 and 8 replicas as a ratio to 1 replica (goal ≥ 0.8 × N), and the bound of the
            read and host tasks (the same pipeline with d = 0).
  overhead  `yedge predict` on N synthetic 640×480 photos (the real exported model, onnxruntime
            on the CPU): --engine ray against --engine local, Ray's start-up (joining a new
            local cluster, the probe that reads the model's description) and the rest per image.

    .venv/bin/python bench/ray_scaling.py scaling [--images 48] [--device-ms 200]
    .venv/bin/python bench/ray_scaling.py overhead [--images 100]
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import stream as stream_bench  # noqa: E402
from stream import SleepRecipe, head_outputs  # noqa: E402

from yolact_edge_cli.host import HostSpec  # noqa: E402
from yolact_edge_cli.stream.items import Item  # noqa: E402
from yolact_edge_cli.stream.ray_cluster import RaySettings, connect  # noqa: E402
from yolact_edge_cli.stream.ray_engine import RayEngine  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"
MOBILENET = "yolact_edge_mobilenetv2_config"  # the lighter config: more images in the same time


def _wall(replicas: int, device_ms: float, count: int) -> float:
    """Seconds for `count` 64×48 frames through `replicas` sleeping replicas (batch 1) and the
    real host part on five detections per image."""
    frame = np.full((48, 64, 3), 128, np.uint8)
    outputs = head_outputs()
    engine = RayEngine(RaySettings(replicas=replicas, resources={"CPU": 0.0, "sleeper": 1.0}))
    items = [Item(i, "synthetic", i, pixels=frame) for i in range(count)]
    started = time.perf_counter()
    with engine.open(SleepRecipe(device_ms, tuple(outputs), batch_size=1), lambda info: HostSpec(layout="head")) as run:
        done = sum(1 for _ in run.predictions(items))
    assert done == count
    return time.perf_counter() - started


def scaling(count: int, device_ms: float) -> None:
    import ray
    from ray import cloudpickle

    cloudpickle.register_pickle_by_value(stream_bench)  # Ray's workers cannot import bench/
    ray.init(resources={"sleeper": 8}, include_dashboard=False, log_to_driver=False)
    connect(None)  # quiets as the command does; the cluster above is kept across the runs
    _wall(1, device_ms, 4)  # workers started and modules imported once, outside the timings
    bound = count / _wall(8, 0.0, count)
    print(f"{count} images, batch 1, d = {device_ms:.0f} ms per batch; read + host tasks alone: "
          f"{bound:.1f} images/s")
    print("replicas  images/s  ratio to 1  goal (0.8 × N, at most the bound)")
    first = None
    for replicas in (1, 2, 4, 8):
        rate = count / _wall(replicas, device_ms, count)
        first = first or rate
        goal = min(0.8 * replicas * first, bound)
        print(f"{replicas:8d} {rate:9.2f} {rate / first:11.2f}  {goal:.2f} images/s "
              f"{'met' if rate >= goal else 'NOT met'}")
    ray.shutdown()


def overhead(count: int) -> None:
    from yolact_edge_cli.steps import export, predict, random_weights
    from yolact_edge_cli.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="ray_overhead_"))
    photos = [cv2.resize(cv2.imread(str(DATA / n)), (640, 480)) for n in ("astronaut.png", "coffee.png")]
    folder = root / "images"
    folder.mkdir()
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.roll(photos[i % 2], 13 * i, axis=1))
    random_weights.run(root / "weights.pth", config=MOBILENET)
    ws = Workspace(root / "ws")
    export.run(ws, root / "weights.pth", export.ExportOptions(config=MOBILENET))
    started = time.perf_counter()
    import ray

    connect(None)
    joined = time.perf_counter() - started
    ray.shutdown()
    walls = {}
    for engine in ("local", "ray"):
        started = time.perf_counter()
        result = predict.run(ws, [str(folder)], predict.PredictOptions(backend="onnxruntime", save_images=False,
                                                                       engine=engine, name=engine))
        walls[engine] = time.perf_counter() - started
        assert result.images == count
    same = (ws.root / "predict" / "local" / "predictions.jsonl").read_bytes() == \
        (ws.root / "predict" / "ray" / "predictions.jsonl").read_bytes()
    extra = walls["ray"] - walls["local"]
    print(f"{count} images, onnxruntime CPU, mobilenet config: local {walls['local']:.1f} s "
          f"({count / walls['local']:.2f} images/s), ray {walls['ray']:.1f} s ({count / walls['ray']:.2f} "
          f"images/s); ray - local = {extra:.1f} s, of which joining a new local cluster {joined:.1f} s; "
          f"the rest {(extra - joined) / count * 1000:.0f} ms per image; predictions identical: {same}")
    shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("what", choices=("scaling", "overhead"))
    parser.add_argument("--images", type=int, default=None)
    parser.add_argument("--device-ms", type=float, default=200.0)
    args = parser.parse_args()
    if args.what == "scaling":
        scaling(args.images or 48, args.device_ms)
    else:
        overhead(args.images or 100)


if __name__ == "__main__":
    main()
