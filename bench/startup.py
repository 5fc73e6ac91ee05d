"""Start-up time of yedge commands: `--help`, and each command up to its first check (run in an
empty workspace, where it stops at once), median of N runs. Pass --other DIR (a checkout of
another version, e.g. `git worktree add /tmp/before HEAD~5`) to time both side by side.

    .venv/bin/python bench/startup.py [--runs 7] [--other /tmp/before]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COMMANDS = (
    ["--help"], ["prep", "--help"], ["infer", "--help"], ["eval", "--help"],
    ["prep", "--images", "/nonexistent", "--annotations", "/nonexistent.json"],
    ["infer"], ["eval", "--outputs", "/nonexistent"], ["convert", "--soc-version", "Ascend310P3"],
)


def median_seconds(source: Path, argv: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        workspace = Path(tempfile.mkdtemp())
        env = {**os.environ, "PYTHONPATH": str(source)}
        started = time.perf_counter()
        subprocess.run([sys.executable, "-m", "yolact_edge_cli", "-w", str(workspace / "ws"), *argv],
                       env=env, cwd=workspace, capture_output=True)
        times.append(time.perf_counter() - started)
        shutil.rmtree(workspace)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--other", type=Path, help="another checkout to time side by side")
    args = parser.parse_args()
    sources = [("this", ROOT)] + ([("other", args.other)] if args.other else [])
    print("command".ljust(70) + "".join(name.rjust(10) for name, _ in sources))
    for argv in COMMANDS:
        cells = [f"{median_seconds(path, argv, args.runs):9.2f}s" for _, path in sources]
        print(("yedge " + " ".join(argv)).ljust(70) + "".join(c.rjust(10) for c in cells))


if __name__ == "__main__":
    main()
