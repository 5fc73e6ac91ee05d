"""Benchmarks of the whole CPU workflow on a synthetic COCO-like set (640×480 images made from
the two sample photos, random seed-0 ResNet-50 weights, so every image carries 100 detections):

  * prep: images/s with 1 and 2 workers
  * host post-processing per image (heads + Detect + masks + RLE), fpn and head layouts,
    with 1 and 2 eval workers (wall time / images, and the per-stage split)
  * onnxruntime vs torch inference on the CPU at batch 1 and 8

    .venv/bin/python bench/pipeline.py [--images 24] [--out bench-workspace]
"""
from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

import cv2
import numpy as np

from yolact_edge_cli.steps import bench, evaluate, export, infer, prep, random_weights
from yolact_edge_cli.workspace import Workspace

DATA = Path(__file__).resolve().parents[1] / "tests" / "data"


def synthetic_coco(folder: Path, count: int) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    photos = [cv2.resize(cv2.imread(str(DATA / n)), (640, 480)) for n in ("astronaut.png", "coffee.png")]
    images, annotations = [], []
    rng = np.random.default_rng(0)
    for i in range(count):
        image = np.roll(photos[i % 2], int(rng.integers(0, 640)), axis=1)
        cv2.imwrite(str(folder / f"{i:012d}.jpg"), image)
        images.append({"id": i + 1, "file_name": f"{i:012d}.jpg", "width": 640, "height": 480})
        for _ in range(3):
            x, y = (int(v) for v in rng.integers(0, 400, 2))
            w, h = (int(v) for v in rng.integers(20, 200, 2))
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, "iscrowd": 0,
                                "category_id": int(rng.choice([1, 3, 87])), "bbox": [x, y, w, h],
                                "area": w * h, "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{"id": c, "name": str(c)} for c in (1, 3, 87)]
    path = folder.parent / "annotations.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=24)
    parser.add_argument("--out", type=Path, default=Path("bench-workspace"))
    args = parser.parse_args()
    shutil.rmtree(args.out, ignore_errors=True)
    annotations = synthetic_coco(args.out / "images", args.images)
    weights = args.out / "r50.pth"
    random_weights.run(weights)
    report: dict = {"images": args.images}

    for workers in (1, 2):
        ws = Workspace(args.out / f"prep{workers}")
        result = prep.run(ws, args.out / "images", annotations, prep.PrepOptions(workers=workers))
        report[f"prep_img_per_s_workers{workers}"] = result.images_per_second

    for layout in ("fpn", "head"):
        ws = Workspace(args.out / f"ws_{layout}")
        prep.run(ws, args.out / "images", annotations, prep.PrepOptions(workers=2))
        export.run(ws, weights, export.ExportOptions(layout=layout, dynamic_batch=True))
        infer.run(ws)
        for workers in (1, 2):
            evaluate.run(ws, evaluate.EvalOptions(workers=1))  # warm the page cache and imports
            started = time.perf_counter()
            evaluated = evaluate.run(ws, evaluate.EvalOptions(workers=workers))
            report[f"eval_{layout}_workers{workers}_ms_per_image"] = evaluated.host_ms_per_image
            report[f"eval_{layout}_workers{workers}_step_seconds"] = round(time.perf_counter() - started, 2)
        if layout == "fpn":
            for backend in ("onnxruntime", "torch"):
                measured = bench.run(ws, bench.BenchOptions(backend=backend, batch_sizes=(1, 8), loop=5, warmup=1))
                report[f"bench_{backend}_cpu"] = {r.batch_size: r.throughput for r in measured.rows}
        stages = bench.BenchOptions(stages=True, images=min(10, args.images))
        report[f"stages_onnxruntime_{layout}"] = bench.run(ws, stages).stages_ms
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
