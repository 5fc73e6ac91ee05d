"""PyTorch forward time of the device part (backbone + FPN + proto) and of the heads, batch 1,
fp32, on the CPU, to compare with the reference's 655 ms (docs/model.md §10).

    .venv/bin/python bench/torch_forward.py [--weights X.pth] [--threads 2] [--runs 20]
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import torch

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.model.checkpoint import load_model
from yolact_edge_cli.steps import export, random_weights


def timed(fn, runs: int, warmup: int = 3) -> list[float]:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--weights", type=Path)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=20)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    weights = args.weights
    if weights is None:
        weights = Path(tempfile.mkdtemp()) / "r50.pth"
        random_weights.run(weights)
    net = load_model(weights)
    x = torch.from_numpy(preprocess(read_image(export.SAMPLE_IMAGE)))[None]
    with torch.no_grad():
        maps, _ = net.features(x)
        for name, fn in (("backbone+fpn+proto", lambda: net.features(x)),
                         ("heads+softmax", lambda: net.heads(maps))):
            t = timed(fn, args.runs)
            print(f"{name:20s} median {statistics.median(t):7.1f} ms  min {min(t):7.1f}  max {max(t):7.1f}"
                  f"  ({args.runs} runs, {args.threads} threads, torch {torch.__version__})")


if __name__ == "__main__":
    main()
