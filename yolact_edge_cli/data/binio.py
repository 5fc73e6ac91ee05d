"""ais_bench's file rules, so every backend reads inputs and writes outputs exactly as the Ascend
tool does (docs/ascend.md §1.2–1.3): natural-sort order, N files concatenated per
batch, the last batch padded with copies of its own first file, outputs `<stem>_<k>.bin` where
the stem is the input's basename cut at the first dot, and `<run>_summary.json` beside the run."""
from __future__ import annotations

import json
import os
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..choices import Layout
from ..errors import InputError
from ..model.contract import LAYOUTS, output_bytes
from ..workspace import file_size

INPUT_SUFFIXES = (".bin", ".BIN", ".npy", ".NPY")
# Output files hold float32, or float16 when the .om was built with --output_type FP16.
OUTPUT_DTYPES = ("float32", "float16")


def natural_key(name: str) -> list:
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def list_input_files(folder: Path) -> list[Path]:
    if not folder.is_dir():
        raise InputError("input folder not found", path=folder,
                         hint="run `yedge prep` first")
    files = [p for p in folder.iterdir() if p.is_file() and p.name.endswith(INPUT_SUFFIXES)]
    if not files:
        raise InputError("no .bin or .npy inputs in this folder", path=folder,
                         hint="run `yedge prep` first")
    return sorted(files, key=lambda p: natural_key(p.name))


@dataclass(frozen=True)
class Batch:
    files: tuple[Path, ...]  # real files, in order
    size: int                # the model's batch; files are padded to it with files[0]

    @property
    def padded(self) -> tuple[Path, ...]:
        return self.files + (self.files[0],) * (self.size - len(self.files))


def group(files: list[Path], per_batch: int) -> list[Batch]:
    return [Batch(tuple(files[i:i + per_batch]), per_batch) for i in range(0, len(files), per_batch)]


def output_stem(infile: Path) -> str:
    return os.path.basename(str(infile)).split(".")[0]


def output_path(run_dir: Path, infile: Path, k: int) -> Path:
    return run_dir / f"{output_stem(infile)}_{k}.bin"


def run_layout(run_dir: Path) -> str:
    """The layout whose output sizes the first sample's files have; while that sample is still
    incomplete, the one its number of files and first file's size can belong to (the fpn and
    detect layouts both have six outputs, the detect layout's first is a few KB)."""
    count = len(list(run_dir.glob("0_*.bin")))
    sizes = [file_size(run_dir / f"0_{k}.bin") for k in range(count)]
    for layout in LAYOUTS:
        if any(sizes == output_bytes(layout, np.dtype(d).itemsize) for d in OUTPUT_DTYPES):
            return layout
    if count == len(output_bytes(Layout.HEAD.value)):
        return Layout.HEAD.value
    detect_first = output_bytes(Layout.DETECT.value)[0]
    return Layout.DETECT.value if sizes and sizes[0] <= detect_first else Layout.FPN.value


def sample_dtype(run_dir: Path, stem: str, layout: str) -> str | None:
    """The dtype in which every output file of one sample is complete, or None."""
    sizes = [file_size(run_dir / f"{stem}_{k}.bin") for k in range(len(output_bytes(layout)))]
    return next((d for d in OUTPUT_DTYPES if sizes == output_bytes(layout, np.dtype(d).itemsize)), None)


def first_incomplete(run_dir: Path, stem: str, layout: str) -> Path:
    """The first of a sample's output files whose size fits no output dtype (for messages)."""
    for k in range(len(output_bytes(layout))):
        path = run_dir / f"{stem}_{k}.bin"
        if file_size(path) not in {output_bytes(layout, np.dtype(d).itemsize)[k] for d in OUTPUT_DTYPES}:
            return path
    return run_dir / f"{stem}_0.bin"


def read_sample(path: Path, dtype: np.dtype, sample_shape: tuple[int, ...]) -> np.ndarray:
    """One prepared input file (raw bytes, or .npy) as a [*sample_shape] tensor of `dtype`."""
    expected = int(np.prod(sample_shape)) * np.dtype(dtype).itemsize
    raw = np.load(path).tobytes() if path.suffix.lower() == ".npy" else path.read_bytes()
    if len(raw) != expected:
        raise InputError(
            f"input has {len(raw)} bytes, the model takes {expected} "
            f"({np.dtype(dtype).name} {list(sample_shape)})", path=path,
            hint="rerun `yedge prep` (it rewrites damaged inputs), with the --dtype the model was "
                 "exported for")
    return np.frombuffer(raw, dtype=dtype).reshape(sample_shape)


def read_batch(batch: Batch, dtype: np.dtype, sample_shape: tuple[int, ...]) -> np.ndarray:
    """The batch's files (padding included) as one [size, *sample_shape] tensor."""
    return np.stack([read_sample(path, dtype, sample_shape) for path in batch.padded])


def timing_stats(times_ms: list[float]) -> dict:
    if not times_ms:
        return {"min": 0.0, "max": 0.0, "mean": 0.0, "median": 0.0, "percentile(99%)": 0.0, "count": 0}
    arr = np.asarray(times_ms, dtype=np.float64)
    return {"min": float(arr.min()), "max": float(arr.max()), "mean": float(arr.mean()),
            "median": float(np.median(arr)), "percentile(99%)": float(np.percentile(arr, 99)),
            "count": int(arr.size)}


def merge_stats(parts: list[dict]) -> dict:
    """The stats of several runs' times from each run's stats (ais_bench's CLI summary gives no
    per-copy list): exact count, min, max and mean; a median or percentile cannot be recovered
    from parts, so with more than one part they are None rather than a guess."""
    parts = [p for p in parts if p.get("count")]
    if len(parts) <= 1:
        return dict(parts[0]) if parts else timing_stats([])
    count = sum(p["count"] for p in parts)
    return {"min": min(p["min"] for p in parts), "max": max(p["max"] for p in parts),
            "mean": sum(p["mean"] * p["count"] for p in parts) / count, "median": None,
            "percentile(99%)": None, "count": count}


def summary(filesinfo: dict, compute_ms: list[float], batch_size: int,
            h2d: dict | None = None, d2h: dict | None = None) -> dict:
    """ais_bench's `<run>_summary.json` structure, keys in its order; `h2d`/`d2h` are the
    copies' stats where the device reported them."""
    compute = timing_stats(compute_ms)
    mean = compute["mean"]
    return {
        "filesinfo": filesinfo,
        "args": list(sys.argv),
        "NPU_compute_time": compute,
        "H2D_latency": h2d or timing_stats([]),
        "D2H_latency": d2h or timing_stats([]),
        "npu_compute_time_list": [float(t) for t in compute_ms],
        "throughput": 1000 * batch_size / mean if mean else 0,
        "pid": os.getpid(),
    }


def summary_path(run_dir: Path) -> Path:
    return run_dir.parent / f"{run_dir.name}_summary.json"


def write_json(path: Path, data) -> None:
    from ..workspace import atomic_write_text

    atomic_write_text(path, json.dumps(data, indent=2) + "\n")
