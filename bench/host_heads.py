"""The fpn layout's prediction heads on the host: numpy (what yedge runs, exact on every path)
against PyTorch's module (what it ran before), on 1 and on all cores, same process, interleaved.

    python bench/host_heads.py [--config yolact_edge_resnet50_config] [--repeat 7]

Prints the CPU, then the median ms per image of each. Random FPN maps of the real sizes; a
random checkpoint (the weights' values do not change the cost).
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from yolact_edge_cli.model.checkpoint import load_model
from yolact_edge_cli.model.config import FPN_SIZES
from yolact_edge_cli.model.head import run_heads
from yolact_edge_cli.model.host_heads import HostHeads
from yolact_edge_cli.parallel import limit_blas_threads
from yolact_edge_cli.steps import random_weights


def cpu_name() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default="yolact_edge_resnet50_config")
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    cores = os.cpu_count() or 1
    with tempfile.TemporaryDirectory() as folder:
        weights = Path(folder) / "random.pth"
        random_weights.run(weights, config=args.config)
        module = load_model(weights, args.config).head
        numpy_heads = {t: HostHeads.from_checkpoint(str(weights), args.config, t) for t in sorted({1, cores})}
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((1, 256, s, s)).astype(np.float32) for s in FPN_SIZES]
    tensors = [torch.from_numpy(m) for m in maps]
    limit_blas_threads(1)
    runs: dict[str, list[float]] = {}

    def torch_heads(threads: int):
        torch.set_num_threads(threads)
        with torch.inference_mode():
            run_heads(module, tensors)

    contenders = {f"numpy, {t} thread(s)": (lambda h=h: h(maps)) for t, h in numpy_heads.items()}
    contenders |= {f"PyTorch, {t} thread(s)": (lambda t=t: torch_heads(t)) for t in sorted({1, cores})}
    for run in contenders.values():  # warm-up
        run()
    for _ in range(args.repeat):
        for name, run in contenders.items():
            started = time.perf_counter()
            run()
            runs.setdefault(name, []).append((time.perf_counter() - started) * 1000)
    print(f"{cpu_name()}, {cores} cores; {args.config}; median of {args.repeat} interleaved runs")
    for name, times in runs.items():
        print(f"  {name:<22} {statistics.median(times):7.1f} ms/image")


if __name__ == "__main__":
    main()
