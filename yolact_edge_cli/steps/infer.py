"""`yedge infer`: run the model over `inputs/bin_file` with ais_bench's grouping and file naming,
so `eval` reads every backend's outputs the same way."""
from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..backends import open_session, resolve_backend
from ..console import progress_bar
from ..errors import InputError, UsageError
from ..model.config import INPUT_SIZE
from ..model.yolact import output_bytes
from ..workspace import Workspace, atomic_path, file_size, sha256_file
from ..data import binio
from . import prep


@dataclass
class InferResult:
    run: str
    run_dir: str
    backend: str
    device: str
    model: str
    layout: str
    batch_size: int
    samples: int
    computed: int
    skipped_existing: int
    seconds: float
    throughput: float

    def to_dict(self) -> dict:
        return asdict(self)


def model_source(ws: Workspace, backend: str, model: Path | None) -> tuple[Path, dict]:
    """The model file for a backend: --model, else what `export` recorded."""
    export = ws.step("export") or {}
    if model is not None:
        return Path(model), export
    if not export:
        ws.require("export", "exported model", "yedge export --weights X.pth")
    key = "onnx" if backend == "onnxruntime" else "weights"
    stored = export["outputs"]["onnx"] if key == "onnx" else export["inputs"]["weights"]
    return ws.resolve(stored), export


def run(ws: Workspace, *, backend: str = "auto", model: Path | None = None, device: str = "cpu",
        half: bool = False, batch_size: int | None = None, run_name: str | None = None,
        inputs: Path | None = None) -> InferResult:
    backend = resolve_backend(backend)
    source, export = model_source(ws, backend, model)
    options = export.get("options", {})
    prep_entry = ws.step("prep") or {}
    input_dtype = prep_entry.get("options", {}).get("dtype", "float32")
    session = open_session(backend, onnx=source, weights=source, device=device, half=half,
                           layout=options.get("layout", "fpn"),
                           input_dtype=options.get("input_dtype", input_dtype),
                           batch_size=batch_size, config=options.get("config", "auto"))
    info = session.info
    if info.input_dtype != input_dtype:
        raise InputError(f"the model takes {info.input_dtype} input but the inputs were prepared as "
                         f"{input_dtype}", path=source,
                         hint=f"rerun `yedge prep --dtype {info.input_dtype}` or export with "
                              f"--input-dtype {input_dtype}")
    if info.batch_size is not None and batch_size not in (None, info.batch_size):
        raise UsageError(f"the model has a static batch of {info.batch_size}, not {batch_size}",
                         hint="drop --batch-size, or export with --dynamic-batch")
    per_batch = info.batch_size or batch_size or 1
    in_dir = Path(inputs) if inputs else prep.bin_dir(ws)
    files = binio.list_input_files(in_dir)
    run_name = run_name or backend
    run_dir = ws.outputs_dir / run_name
    run_dir.mkdir(parents=True, exist_ok=True)
    sizes = output_bytes(info.layout)
    sample_shape = (3, INPUT_SIZE, INPUT_SIZE)

    def complete(path: Path) -> bool:
        return all(file_size(binio.output_path(run_dir, path, k)) == size for k, size in enumerate(sizes))

    batches = binio.group(files, per_batch)
    todo = [b for b in batches if not all(complete(f) for f in b.files)]
    times: list[float] = []
    started = time.perf_counter()
    with progress_bar(len(files), f"infer {backend} ({device}, batch {per_batch})") as advance:
        advance(len(files) - sum(len(b.files) for b in todo))
        for batch in todo:
            data = binio.read_batch(batch, np.dtype(input_dtype), sample_shape)
            t0 = time.perf_counter()
            outputs = session.run(data)
            times.append((time.perf_counter() - t0) * 1000)
            for k, output in enumerate(outputs):
                for j, part in enumerate(np.array_split(output, per_batch, axis=0)[: len(batch.files)]):
                    with atomic_path(binio.output_path(run_dir, batch.files[j], k)) as tmp:
                        np.ascontiguousarray(part, dtype=np.float32).tofile(tmp)
            advance(len(batch.files))
    seconds = time.perf_counter() - started
    filesinfo = {str(i): {"infiles": [str(f)],
                          "outfiles": [str(binio.output_path(run_dir, f, k)) for k in range(len(sizes))]}
                 for i, f in enumerate(files)}
    summary = binio.summary(filesinfo, times, per_batch)
    binio.write_json(binio.summary_path(run_dir), summary)
    computed = sum(len(b.files) for b in todo)
    result = InferResult(run=run_name, run_dir=str(run_dir), backend=backend, device=device,
                         model=str(source), layout=info.layout, batch_size=per_batch,
                         samples=len(files), computed=computed,
                         skipped_existing=len(files) - computed, seconds=round(seconds, 2),
                         throughput=round(summary["throughput"], 2))
    ws.record("infer", {
        "inputs": {"bin_dir": ws.relative(in_dir), "model": str(source.absolute()),
                   "model_sha256": sha256_file(source)},
        "options": {"backend": backend, "device": device, "half": half, "batch_size": per_batch,
                    "layout": info.layout, "config": options.get("config", "auto")},
        "outputs": {"run": run_name, "run_dir": ws.relative(run_dir),
                    "summary": ws.relative(binio.summary_path(run_dir))},
    })
    return result

