"""Emulated `python3 -m ais_bench` (single device): argument checks, input grouping and padding,
`<stem>_<k>.bin` outputs, `<dirname>_summary.json` and the printed performance summary."""
import argparse
import json
import math
import os
import re
import sys
import time
from pathlib import Path

import aclruntime
import numpy as np

from ._model import OfflineModel
from ._security import PathRefused, check


def natural_key(name: str):
    return [int(p) if p.isdigit() else p.lower() for p in re.split(r"(\d+)", name)]


def stats(values):
    if not values:
        return {"min": 0, "max": 0, "mean": 0, "median": 0, "percentile(99%)": 0, "count": 0}
    arr = np.asarray(values)
    return {"min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()),
            "median": float(np.median(arr)), "percentile(99%)": float(np.percentile(arr, 99)),
            "count": int(arr.size)}


def line(name, s):
    return (f"[INFO] {name} (ms): min = {s['min']}, max = {s['max']}, mean = {s['mean']}, "
            f"median = {s['median']}, percentile(99%) = {s['percentile(99%)']}")


def main() -> int:
    parser = argparse.ArgumentParser(prog="ais_bench")
    parser.add_argument("--model", "-m", required=True)
    parser.add_argument("--input", "-i")
    parser.add_argument("--output", "-o")
    parser.add_argument("--output_dirname")
    parser.add_argument("--outfmt", default="BIN", choices=["NPY", "BIN", "TXT"])
    parser.add_argument("--loop", "-l", type=int, default=1)
    parser.add_argument("--device", "-d", default="0")
    parser.add_argument("--dymBatch", type=int, default=0)
    parser.add_argument("--batchsize", type=int)
    parser.add_argument("--warmup_count", type=int, default=1)
    parser.add_argument("--display_all_summary", default="false")
    args = parser.parse_args()
    if not args.model.endswith(".om") or not os.path.isfile(args.model):
        raise RuntimeError(f"model {args.model} is not a readable .om file")
    if "," in args.device:
        print("[ERROR] multi-device runs are not emulated")
        return 1
    if args.output_dirname and not args.output:
        raise RuntimeError("error bad parameters --output_dirname")
    if args.output_dirname and args.output_dirname.startswith("/"):
        raise RuntimeError("--output_dirname do not support abs path!")
    try:
        check(args.model, "model")
        for entry in (args.input.split(",") if args.input else []):
            check(entry, "input")
        if args.output:
            check(args.output, "output")
        if args.output_dirname:
            check(os.path.join(args.output, args.output_dirname), "output_dirname")
    except PathRefused as exc:
        print(f"[ERROR] {exc}")
        return 1
    if args.output:
        os.chmod(args.output, 0o750)  # as the tool does to --output
    print("[INFO] acl init success")
    print(f"[INFO] open device {args.device} success")
    model = OfflineModel(args.model, int(args.device))
    print(f"[INFO] load model {args.model} success")
    print("[INFO] create model description success")
    if args.dymBatch:
        model.set_dynamic_batch(args.dymBatch)  # refused for a static model, as the tool does
    batch = args.dymBatch if model.batch == -1 else model.batch
    if batch <= 0:
        raise RuntimeError("dynamic batch model needs --dymBatch")
    batchsize = args.batchsize or batch
    print(f"[INFO] try get model batchsize:{batchsize}")
    tensor_size = batch * model.sample_bytes()
    groups, names = [], []
    if args.input:
        entries = [Path(p) for p in args.input.split(",")]
        if entries[0].is_dir():
            files = sorted((p for p in entries[0].iterdir() if p.is_file() and
                            p.name.endswith((".bin", ".BIN", ".npy", ".NPY"))), key=lambda p: natural_key(p.name))
            if not files:
                raise RuntimeError(f"{entries[0]} of input args not find valid file,"
                                   "valid file format:[*.npy *.NPY *.bin *.BIN]")
        else:
            files = entries
        filesize = files[0].stat().st_size
        if tensor_size % filesize:
            print(f"[ERROR] arg0 tensorsize: {tensor_size} filesize: {filesize} not match")
            raise RuntimeError("tensor size and file size not match")
        per_batch = tensor_size // filesize
        runcount = math.ceil(len(files) / per_batch)
        print(f"[INFO] get filesperbatch files0 size:{filesize} tensor0size:{tensor_size} "
              f"filesperbatch:{per_batch} runcount:{runcount}")
        for i in range(0, len(files), per_batch):
            chunk = files[i:i + per_batch]
            padded = chunk + [chunk[0]] * (per_batch - len(chunk))
            raw = b"".join(p.read_bytes() for p in padded)
            groups.append(np.frombuffer(raw, dtype=np.int8))  # bytes, as the tool reads them
            names.append(chunk)
    else:
        groups.append(np.zeros(tensor_size, dtype=np.int8))
        names.append(None)
    out_dir = None
    if args.output:
        out_dir = Path(args.output) / (args.output_dirname or time.strftime("%Y_%m_%d-%H_%M_%S"))
        out_dir.mkdir(mode=0o750, parents=True, exist_ok=True)
        print(f"[INFO] output path:{out_dir}")
    for _ in range(args.warmup_count):
        model.run(groups[0], batch)
    print(f"[INFO] warm up {args.warmup_count} done")
    model.exec_times.clear()
    aclruntime.H2D_TIMES.clear()
    aclruntime.D2H_TIMES.clear()
    filesinfo = {}
    for group, chunk in zip(groups, names):
        for _ in range(args.loop):
            outputs = model.run(group, batch)
        if out_dir is None:
            continue
        if chunk is None:
            for k, output in enumerate(outputs):
                output.tofile(out_dir / f"pure_infer_data_{k}.bin")
            continue
        for k, output in enumerate(outputs):
            for j, part in enumerate(np.array_split(output, batch, axis=0)[: len(chunk)]):
                part.tofile(out_dir / f"{os.path.basename(str(chunk[j])).split('.')[0]}_{k}.bin")
        for infile in chunk:
            filesinfo[len(filesinfo)] = {
                "infiles": [str(infile)],
                "outfiles": [str(out_dir / f"{os.path.basename(str(infile)).split('.')[0]}_{k}.bin")
                             for k in range(len(outputs))]}
    times = [end - start for start, end in model.exec_times]
    compute = stats(times)
    h2d, d2h = stats(aclruntime.H2D_TIMES), stats(aclruntime.D2H_TIMES)
    throughput = 1000 * batchsize / compute["mean"] if compute["mean"] else 0
    print("[INFO] -----------------Performance Summary------------------")
    if args.display_all_summary.lower() in ("1", "true", "t", "yes", "y"):
        print(line("H2D_latency", h2d))
    print(line("NPU_compute_time", compute))
    if args.display_all_summary.lower() in ("1", "true", "t", "yes", "y"):
        print(line("D2H_latency", d2h))
    print(f"[INFO] throughput 1000*batchsize.mean({batchsize})/NPU_compute_time.mean({compute['mean']}): {throughput}")
    print("[INFO] ------------------------------------------------------")
    if out_dir is not None:
        summary = {"filesinfo": filesinfo, "args": sys.argv, "NPU_compute_time": compute,
                   "H2D_latency": h2d, "D2H_latency": d2h,
                   "npu_compute_time_list": times, "throughput": throughput, "pid": os.getpid()}
        (out_dir.parent / f"{out_dir.name}_summary.json").write_text(json.dumps(summary))
    print("[INFO] unload model success, model Id is 1")
    print("[INFO] end to destroy context")
    print(f"[INFO] end to reset device is {args.device}")
    print("[INFO] end to finalize acl")
    return 0


sys.exit(main())
