"""The host part side by side with the reference, in one run on this machine.

The reference is the original yolact_edge, run by the harness of ../shared/reference/harness
(build it first: its README). For every image it times the reference's stages (median of
--runs after --warmup, --threads torch threads); then yedge, on the same images and the same
seed-0 ResNet-50 checkpoint, exports the fpn, head and detect layouts, runs them through
onnxruntime and times the host part with `yedge bench --stages` (one worker with a thread per
core, as `eval --workers 1`, and the images/s sustained on 1 and on all workers). The table
compares the reference's host part (heads + Detect + postprocess, without JSON) with yedge's
(heads, Detect, masks, RLE/JSON).

    .venv/bin/python bench/reference.py --harness ~/refharness [--images A.png B.png …] [--json]
"""
from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT / "tests" / "data"
CONFIG = "yolact_edge_resnet50_config"
REFERENCE_HOST = ("head", "detect", "postprocess")
LAYOUT_GOALS = {"fpn": None, "head": 1 / 10, "detect": 1 / 20}  # of the reference's host time


def reference_stages(harness: Path, checkpoint: Path, image: Path, runs: int, warmup: int,
                     threads: int) -> dict[str, float]:
    """Median ms of each stage the harness prints for one image."""
    proc = subprocess.run(
        [str(harness / "venv" / "bin" / "python"), "run_reference.py", "--config", CONFIG,
         "--checkpoint", str(checkpoint), "--image", str(image), "--timing-runs", str(runs),
         "--warmup", str(warmup), "--threads", str(threads)],
        cwd=harness, capture_output=True, text=True, check=True)
    stages = {}
    for line in proc.stdout.splitlines():
        match = re.fullmatch(r"\s*(\w+)\s+([\d.]+)\s+[\d.]+\s+[\d.]+\s*", line)
        if match:
            stages[match.group(1)] = float(match.group(2))
    missing = [s for s in (*REFERENCE_HOST, "model_forward") if s not in stages]
    if missing:
        raise SystemExit(f"the harness printed no {', '.join(missing)} timing:\n{proc.stdout}")
    return stages


def annotations_for(images: list[Path], path: Path) -> Path:
    """A COCO file listing the images (no annotations: only the sizes prep and eval read)."""
    entries = []
    for i, image in enumerate(images, 1):
        height, width = cv2.imread(str(image)).shape[:2]
        entries.append({"id": i, "file_name": image.name, "width": width, "height": height})
    categories = [{"id": 1, "name": "person"}]
    path.write_text(json.dumps({"images": entries, "annotations": [], "categories": categories}))
    return path


def yedge(*args: str) -> str:
    proc = subprocess.run([sys.executable, "-m", "yolact_edge_cli", *args], capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"yedge {' '.join(args)} failed:\n{proc.stderr}")
    return proc.stdout


def yedge_stages(work: Path, checkpoint: Path, images: Path, annotations: Path, count: int,
                 layout: str, workers: int) -> dict:
    ws = work / layout
    yedge("-w", str(ws), "export", "--weights", str(checkpoint), "--layout", layout)
    yedge("-w", str(ws), "prep", "--images", str(images), "--annotations", str(annotations), "--all-images")
    yedge("-w", str(ws), "infer")
    return json.loads(yedge("-w", str(ws), "--json", "bench", "--stages", "--num-images", str(count),
                            "--workers", str(workers)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--harness", type=Path, required=True, help="the built reference harness")
    parser.add_argument("--images", type=Path, nargs="+",
                        default=[DATA / "astronaut.png", DATA / "coffee.png"])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--threads", type=int, default=2, help="the reference's torch threads")
    parser.add_argument("--copies", type=int, default=4,
                        help="each image this many times in yedge's timing (its stages run once per image)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    harness = args.harness.expanduser().resolve()
    if not (harness / "run_reference.py").is_file():
        raise SystemExit(f"{harness}: no reference harness there — build it with "
                         "../shared/reference/harness/setup.sh (see its README)")
    with tempfile.TemporaryDirectory(prefix="yedge-reference-") as tmp:
        work = Path(tmp)
        checkpoint = work / "r50_seed0.pth"
        yedge("random-weights", "-o", str(checkpoint), "--config", CONFIG, "--seed", "0")
        images = work / "images"
        images.mkdir()
        listed = [image.resolve() for image in args.images]
        for copy in range(args.copies):
            for image in listed:
                (images / f"{image.stem}_{copy}{image.suffix}").symlink_to(image)
        copies = sorted(images.iterdir())
        annotations = annotations_for(copies, work / "annotations.json")
        per_image = [reference_stages(harness, checkpoint, image, args.runs, args.warmup, args.threads)
                     for image in listed]
        reference = {stage: statistics.mean(s[stage] for s in per_image) for stage in per_image[0]}
        workers = os.cpu_count() or 1
        ours = {layout: yedge_stages(work, checkpoint, images, annotations, len(copies), layout, workers)
                for layout in LAYOUT_GOALS}
    reference_host = sum(reference[s] for s in REFERENCE_HOST)
    rows = []
    for layout, result in ours.items():
        stages = result["stages_ms"]
        goal = LAYOUT_GOALS[layout]
        rows.append({"layout": layout, "reference_host_ms": round(reference_host, 1),
                     **{f"yedge_{k}_ms": stages[k] for k in ("heads", "detect", "masks", "json", "host_total")},
                     "ratio": round(stages["host_total"] / reference_host, 3),
                     "goal": goal, "heads_plus_30_ms": round(stages["heads"] + 30, 1) if layout == "fpn" else None,
                     "images_per_s": result["host_images_per_s"],
                     "yedge_inference_ms": stages["inference"]})
    report = {"machine": {"cpus": os.cpu_count()}, "reference_threads": args.threads,
              "images": [p.name for p in listed], "reference_ms": {k: round(v, 1) for k, v in reference.items()},
              "layouts": rows}
    if args.json:
        print(json.dumps(report, indent=2))
        return
    print(f"reference (yolact_edge, {args.threads} threads), mean of the images' medians, ms: "
          + ", ".join(f"{k} {v:.1f}" for k, v in report["reference_ms"].items()))
    print(f"{'layout':8} {'reference host':>14} {'heads':>7} {'Detect':>7} {'masks':>7} {'json':>6} "
          f"{'yedge host':>10} {'ratio':>6} {'goal':>10}  images/s sustained")
    for row in rows:
        goal = (f"≤ {row['goal']:.2f}" if row["goal"] else f"≤ {row['heads_plus_30_ms']} ms")
        rates = ", ".join(f"{k}: {v:.0f}" for k, v in row["images_per_s"].items())
        print(f"{row['layout']:8} {row['reference_host_ms']:>14.1f} {row['yedge_heads_ms']:>7.1f} "
              f"{row['yedge_detect_ms']:>7.1f} {row['yedge_masks_ms']:>7.1f} {row['yedge_json_ms']:>6.1f} "
              f"{row['yedge_host_total_ms']:>10.1f} {row['ratio']:>6.3f} {goal:>10}  {rates}")


if __name__ == "__main__":
    main()
