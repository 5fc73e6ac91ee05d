"""Do two NPUs run in parallel? `yedge infer --backend ascend --ais-bench api` against the test
emulator of ais_bench (tests/fakes: it runs the .om with onnxruntime on one CPU thread and, as
aclruntime does, holds a per-process lock for every device call, so only separate processes
overlap). Times one emulated NPU on N inputs, then two NPUs (`--device 0,1`) on 2N: with one
process per NPU the two wall times are about equal; devices driven from threads of one process
would take twice as long. Needs two free cores; the emulator is never shipped.

    .venv/bin/python bench/multi_npu.py [--inputs 6] [--runs 2]
"""
from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
FAKES = ROOT / "tests" / "fakes"
DATA = ROOT / "tests" / "data"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--inputs", type=int, default=6, help="inputs per NPU")
    parser.add_argument("--runs", type=int, default=2, help="repeats (median)")
    args = parser.parse_args()
    os.environ.update({
        "PATH": os.pathsep.join([str(FAKES / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]]),
        "PYTHONPATH": str(FAKES / "python"), "FAKE_NPU_SMI": "310P3", "FAKE_NPU_DEVICES": "0,1",
        "LD_LIBRARY_PATH": "/usr/local/Ascend/ascend-toolkit/latest/lib64"})
    sys.path.insert(0, str(FAKES / "python"))
    from yolact_edge_cli.steps import convert, export, infer, prep, random_weights
    from yolact_edge_cli.workspace import Workspace

    root = Path(tempfile.mkdtemp(prefix="multi_npu_"))
    os.chmod(root, 0o755)
    ws = Workspace(root / "ws")
    images = root / "images"
    images.mkdir()
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(DATA / name, images / name)
    random_weights.run(root / "weights.pth")
    export.run(ws, root / "weights.pth")
    prep.run(ws, images, DATA / "golden" / "eval_mini" / "instances_mini.json", prep.PrepOptions(workers=1))
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    sample = ws.bin_dir / "0.bin"
    timings: dict[str, list[float]] = {"1 NPU": [], "2 NPUs": []}
    for run in range(args.runs):
        for label, devices, count in (("1 NPU", "0", args.inputs), ("2 NPUs", "0,1", 2 * args.inputs)):
            folder = root / f"inputs_{count}"
            if not folder.exists():
                folder.mkdir(mode=0o755)
                for i in range(count):
                    shutil.copy(sample, folder / f"{i}.bin")
                    os.chmod(folder / f"{i}.bin", 0o644)
            started = time.perf_counter()
            infer.run(ws, infer.InferOptions(backend="ascend", device=devices, inputs=folder, ais_bench="api",
                                             run_name=f"r{run}_{devices.replace(',', '_')}"))
            timings[label].append(time.perf_counter() - started)
    one, two = statistics.median(timings["1 NPU"]), statistics.median(timings["2 NPUs"])
    print(f"emulated NPUs, {args.inputs} inputs per NPU, median of {args.runs} runs (wall, infer.run)")
    print(f"  1 NPU,  {args.inputs:3d} inputs: {one:6.2f} s")
    print(f"  2 NPUs, {2 * args.inputs:3d} inputs: {two:6.2f} s   ratio {two / one:.2f} "
          "(1.0 = fully parallel, 2.0 = one after another)")
    shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
