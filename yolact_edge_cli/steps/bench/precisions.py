"""bench --backends/--precisions: one table of speed against agreement with onnxruntime fp32."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np

from ...backends import resolve_backend
from ...choices import Backend, Engine, Precision
from ...console import stage
from ...data.preprocess import sample_shape
from ...errors import UsageError
from ...host import HostPipeline
from ...records import PrepRecord
from ...resolve import host_spec, model_for, session_for
from ...workspace import Workspace, sha256_file
from .common import BenchResult, BenchRow, PrecisionRow, append, time_batch


def run_precisions(ws: Workspace, *, backends: tuple[str, ...], precisions: tuple[str, ...],
                   device: str = "cpu", batch_sizes: tuple[int, ...] | None = None, loop: int = 100,
                   warmup: int = 10, max_seconds: float = 60.0, images: int = 10,
                   pictures: bool = True) -> BenchResult:
    """One table of speed against accuracy: every (backend, precision) pair asked for, timed as
    the inference mode times one model, and compared with onnxruntime fp32 on the first
    `images` prepared inputs (each output's cosine, float32's confident detections matched,
    and with annotations the box mAP of each). A pair this machine lacks is a refused row."""
    from ...errors import YedgeError

    if loop < 1 or warmup < 0:
        raise UsageError("--loop must be ≥ 1 and --warmup ≥ 0", hint="e.g. --loop 100 --warmup 10")
    backends = tuple(resolve_backend(b) if b == Backend.AUTO.value else b for b in backends)
    for backend in backends:
        if backend not in Backend.values():
            raise UsageError(f"--backends: unknown backend {backend!r}",
                             hint="a comma list of " + ", ".join(b for b in Backend.values() if b != "auto"))
    for precision in precisions:
        if precision not in Precision.values():
            raise UsageError(f"--precisions: unknown precision {precision!r}",
                             hint="a comma list of " + ", ".join(Precision.values()))
    reference = model_for(ws, Backend.ONNXRUNTIME.value, None, None, Precision.FP32.value, "cpu")
    checks, coco = _agreement_inputs(ws, images)
    expected = _fp32_outputs(reference, checks)
    result = BenchResult(backend=",".join(backends), device=device, model=str(reference.path),
                         model_sha256=sha256_file(reference.path), mode="precisions", check_images=len(checks))
    for backend in backends:
        for precision in precisions:
            row = PrecisionRow(backend, precision)
            result.precisions.append(row)
            try:
                choice = model_for(ws, backend, None, None, precision, device)
                row.model, row.size_mb = ws.relative(choice.path), round(choice.path.stat().st_size / 2**20, 1)
                with stage(f"loading {backend} {precision}"):
                    session = session_for(choice, device=device)
                try:
                    # one batch size unless asked: the table's rows multiply every size's minutes
                    sizes = batch_sizes or (session.info.batch_size or 1,)
                    _sweep_rows(row.rows, sizes, session, loop, warmup, max_seconds)
                    if checks:
                        row.agreement = _agree(ws, session, checks, expected, coco)
                finally:
                    session.close()
            except UsageError as exc:  # said in the table's terms: a backend is added to --backends
                row.status, row.reason = "refused", re.sub(r"--backend\b", "--backends", exc.one_line())
            except YedgeError as exc:
                row.status, row.reason = "failed", exc.one_line()
            except Exception as exc:  # a runtime's own error: the row says it, the others still run
                row.status, row.reason = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    append(ws, result, pictures)
    return result


def _sweep_rows(rows: list[BenchRow], sizes, session, loop: int, warmup: int, max_seconds: float) -> None:
    static = session.info.batch_size
    for batch in sizes:
        if static is None or batch == static:
            rows.append(time_batch(session, batch, loop, warmup, max_seconds))


def _agreement_inputs(ws: Workspace, images: int) -> tuple[list[tuple[np.ndarray, int, int, int | None]], Any]:
    """The first prepared inputs with their image sizes and ids (annotated ones), or none; and
    the annotations (None without them), read once for every row."""
    from ...data import binio
    from ...data.coco import image_info, load_coco
    from ...model.config import INPUT_SIZE

    prep = ws.load(PrepRecord)
    if prep is None or prep.layout != "nchw":
        return [], None
    files = binio.list_input_files(ws.bin_dir)[:images]
    ids = ws.read_ids()
    coco = load_coco(prep.annotations) if prep.annotations and Path(prep.annotations).is_file() else None
    checks = []
    for pos, path in enumerate(files):
        data = np.fromfile(path, dtype=prep.dtype).reshape(sample_shape())
        info = image_info(coco, ids[pos]) if coco else None
        checks.append((data, info.width if info else INPUT_SIZE, info.height if info else INPUT_SIZE,
                       ids[pos] if info else None))
    return checks, coco


def _run_one(session, data: np.ndarray) -> list[np.ndarray]:
    """One input through a session of any static batch (repeated to fill it), its outputs for it."""
    batch = session.info.batch_size or 1
    return [o[:1] for o in session.run(np.ascontiguousarray(np.repeat(data[None], batch, axis=0)))]


def _fp32_outputs(reference, checks) -> list[list[np.ndarray]]:
    if not checks:
        return []
    session = session_for(reference)
    try:
        return [_run_one(session, data) for data, *_ in checks]
    finally:
        session.close()


def _agree(ws: Workspace, session, checks, expected, coco) -> dict:
    from ...metrics.agreement import Agreement
    from ...model.contract import output_names

    layout = session.info.layout
    agreement = Agreement(HostPipeline(host_spec(ws, layout)), output_names(layout), coco)
    for (data, width, height, image_id), want in zip(checks, expected):
        agreement.add(want, _run_one(session, data), width, height, image_id)
    return agreement.finish().to_dict()


def table_ran(result: BenchResult) -> None:
    """A table in which no pair ran here measured nothing: a usage error after it is shown."""
    if result.precisions and not any(row.status == "ok" for row in result.precisions):
        raise UsageError("no pair of --backends × --precisions runs here (each row says why)",
                         hint="pick pairs this machine runs (yedge doctor lists them)")


def table_request(backends: str | None, precisions: str | None, backend: str, *, stages: bool, stream: bool,
                  engine: str, precision: str | None) -> tuple[tuple[str, ...], tuple[str, ...]] | None:
    """--backends/--precisions (comma lists): the backends and precisions of the one table of
    speed against accuracy, or None when neither is given. The table makes its own runs, so the
    options of the other modes are refused with it."""
    if backends is None and precisions is None:
        return None
    if stages or stream or engine != Engine.LOCAL.value or precision is not None or (
            backends is not None and backend != Backend.AUTO.value):
        raise UsageError("--backends/--precisions make their own table",
                         hint="drop --backend, --stages, --stream, --engine, --precision and --half")
    listed = backends.split(",") if backends else [backend]
    return (tuple(b.strip() for b in listed if b.strip()),
            tuple(p.strip() for p in (precisions or Precision.FP32.value).split(",") if p.strip()))
