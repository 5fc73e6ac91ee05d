"""A video model's speed, side by side in one run (docs/video.md §7): for each config, the
random checkpoint exported, then `yedge bench` (keyframe and non-keyframe pass, frames/s at the
interval) per backend and precision, and `yedge predict` on a lossless N-frame sequence at
--keyframe-interval 1 and the interval, alternating (each twice), reporting frames/s.

    .venv/bin/python bench/video.py [--frames 60] [--interval 5] [--loop 10] \
        [--runners onnxruntime:fp32,openvino:fp32,openvino:bf16,torch:fp32]
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ("yolact_edge_vid_resnet50_config", "yolact_edge_vid_minimal_resnet50_config")


def yedge(ws: Path, *args: str) -> dict:
    proc = subprocess.run([sys.executable, "-m", "yolact_edge_cli", "-w", str(ws), *args, "--json"],
                          capture_output=True, text=True, cwd=ROOT)
    if proc.returncode != 0:
        raise SystemExit(f"yedge {' '.join(args)} failed:\n{proc.stderr}")
    return json.loads(proc.stdout)


def sequence(folder: Path, frames: int) -> Path:
    image = cv2.imread(str(ROOT / "tests" / "data" / "astronaut.png"))
    folder.mkdir(parents=True)
    for i in range(frames):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.roll(image, (i, 2 * i), axis=(0, 1)))
    return folder


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--frames", type=int, default=60)
    parser.add_argument("--interval", type=int, default=5)
    parser.add_argument("--loop", type=int, default=10)
    parser.add_argument("--runners", default="onnxruntime:fp32,openvino:fp32,openvino:bf16,torch:fp32")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="yedge-video-bench-"))
    clip = sequence(root / "clip", args.frames)
    for config in CONFIGS:
        ws = root / config
        weights = ws / "random.pth"
        yedge(ws, "random-weights", "--config", config, "-o", str(weights))
        yedge(ws, "export", "--weights", str(weights))
        print(f"\n{config}")
        for runner in args.runners.split(","):
            backend, precision = runner.split(":")
            model = ["--model", str(weights)] if backend == "torch" else []
            video = yedge(ws, "bench", "--backend", backend, "--precision", precision, *model,
                          "--batch-sizes", "1", "--loop", str(args.loop), "--warmup", "2",
                          "--keyframe-interval", str(args.interval))["video"]
            print(f"  bench {backend} {precision}: keyframe {video['keyframe_ms']:.1f} ms, non-keyframe "
                  f"{video['non_keyframe_ms']:.1f} ms ({video['ratio']:.2f}); {video['frames_per_s']:.2f} "
                  f"frames/s at interval {args.interval}, {video['every_frame_key_per_s']:.2f} at 1")
        rates: dict[int, list[float]] = {1: [], args.interval: []}
        for _ in range(2):
            for interval in rates:
                result = yedge(ws, "predict", str(clip), "--sequence", "--keyframe-interval", str(interval),
                               "--no-save-video", "--no-save-json", "--name", f"i{interval}", "--exist-ok")
                rates[interval].append(result["fps"])
        print(f"  predict onnxruntime fp32, {args.frames} frames: interval 1 {rates[1]} frames/s, "
              f"interval {args.interval} {rates[args.interval]} frames/s: "
              f"{np.mean(rates[args.interval]) / np.mean(rates[1]):.2f}x")


if __name__ == "__main__":
    main()
