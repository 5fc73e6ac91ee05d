"""`yedge bench`: pure inference speed per batch size on synthetic input (like
`ais_bench --loop`), or with --stages the whole path per image on prepared inputs."""
from __future__ import annotations

import contextlib
import json
import os
import shutil
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..backends import RunTimes, open_session, resolve_backend, timed_run
from ..choices import Backend, Engine, Precision
from ..console import progress_bar, stage
from ..data.preprocess import sample_shape
from ..errors import InputError, UsageError
from ..host import HOST_STAGES, HostPipeline, sustained_rate
from ..precision import check as check_precision
from ..records import BenchRecord, ConvertRecord, PrepRecord
from ..resolve import (
    annotations_for,
    choose_backend,
    host_model,
    host_spec,
    in_process,
    model_for,
    om_model,
    parse_devices,
    session_for,
)
from ..stream.engine import engine_for, recipe_for
from ..stream.items import Item
from ..timing import StageTimes
from ..workspace import Workspace, atomic_write_text, sha256_file, versions

if TYPE_CHECKING:
    from ..stream import engine as streaming
    from ..stream.ray_cluster import RaySettings
    from ..stream.stages import SessionRecipe

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32, 64)
CPU_BATCH_SIZES = (1, 4, 8)  # the larger ones take minutes each on a CPU


@dataclass
class BenchRow:
    batch_size: int
    loops: int
    throughput: float  # images per second
    latency_mean_ms: float
    latency_p50_ms: float
    latency_p90_ms: float | None  # None where only ais_bench's printed summary was available
    latency_p99_ms: float
    # the copies to and from the NPU per batch, apart from the compute time above (ais_bench's
    # H2D_latency / D2H_latency); None on the host backends and where ais_bench gave none
    h2d_mean_ms: float | None = None
    d2h_mean_ms: float | None = None


@dataclass
class PrecisionRow:
    """One (backend, precision) pair of `bench --backends … --precisions …`: its speed at each
    batch size and its agreement with onnxruntime fp32 on the prepared images; or why it did not
    run (refused: this backend or CPU lacks it; failed: it broke), as Ultralytics' benchmark
    marks such rows."""

    backend: str
    precision: str
    status: str = "ok"  # ok, refused or failed
    reason: str | None = None
    model: str | None = None
    size_mb: float | None = None
    rows: list[BenchRow] = field(default_factory=list)
    agreement: dict | None = None  # metrics/agreement.py's summary; None without prepared inputs


@dataclass
class BenchResult:
    backend: str
    device: str
    model: str
    model_sha256: str
    mode: str  # "inference" or "stages"
    rows: list[BenchRow] = field(default_factory=list)
    stages_ms: dict[str, float] = field(default_factory=dict)
    # --stages: images/s the host part sustains on 1 worker and on all `workers` (measured)
    host_images_per_s: dict[str, float] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    interrupted: bool = False  # Ctrl-C during the sweep: `rows` are the batch sizes that finished
    workers: int | None = None  # processes per pipeline stage (--stream)
    precisions: list[PrecisionRow] = field(default_factory=list)  # --backends/--precisions
    check_images: int = 0  # prepared images each precision row was compared with fp32 on

    def to_dict(self) -> dict:
        return asdict(self)


def row_from_times(batch: int, times_ms: list[float], h2d_mean_ms: float | None = None,
                   d2h_mean_ms: float | None = None) -> BenchRow:
    t = np.asarray(times_ms)
    return BenchRow(batch_size=batch, loops=len(times_ms),
                    throughput=round(1000 * batch / float(t.mean()), 2),
                    latency_mean_ms=round(float(t.mean()), 2),
                    latency_p50_ms=round(float(np.percentile(t, 50)), 2),
                    latency_p90_ms=round(float(np.percentile(t, 90)), 2),
                    latency_p99_ms=round(float(np.percentile(t, 99)), 2),
                    h2d_mean_ms=_rounded(h2d_mean_ms), d2h_mean_ms=_rounded(d2h_mean_ms))


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def _mean(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def _synthetic(batch: int, dtype: str, sample: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (batch, *sample)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape, dtype=np.float32)


def run(ws: Workspace, *, backend: str = "auto", model: Path | None = None, device: str = "cpu",
        precision: str | None = None, batch_sizes: tuple[int, ...] | None = None, loop: int = 100,
        warmup: int = 10, max_seconds: float = 60.0, stages: bool = False,
        images: int = 10, ais_bench: str = "auto", stream: bool = False,
        workers: int | None = None, compiled: bool = False, engine: str = Engine.LOCAL.value,
        ray: RaySettings | None = None) -> BenchResult:
    backend = choose_backend(backend, model)
    if loop < 1 or warmup < 0:
        raise UsageError("--loop must be ≥ 1 and --warmup ≥ 0", hint="e.g. --loop 100 --warmup 10")
    if stream:
        if stages:
            raise UsageError("--stream and --stages are two views of the whole path", hint="pick one")
        batch = batch_sizes[0] if batch_sizes else None
        choice = model_for(ws, backend, model, batch, precision, device)
        result = BenchResult(backend=backend, device=device, model=str(choice.path),
                             model_sha256=sha256_file(choice.path) if choice.path.is_file() else "",
                             mode="stream" if engine == Engine.LOCAL.value else f"stream ({engine})",
                             workers=max(1, workers or os.cpu_count() or 1))
        result.stages_ms = _stream(ws, engine_for(ws, engine, ray, backend=backend, device=device,
                                                          workers=result.workers or 1),
                                   recipe_for(ws, choice, device, batch), images)
        _append(ws, result)
        return result
    if backend == Backend.ASCEND.value:
        if stages:
            raise UsageError("--stages runs on the host backends", hint="use --backend onnxruntime or torch")
        result = _ascend(ws, model, device, batch_sizes, loop, warmup, max_seconds, ais_bench)
        _append(ws, result)
        return result
    if precision is not None:
        check_precision(backend, device, precision)
    choice = host_model(ws, backend, model, precision or Precision.FP32.value)
    source = choice.path
    result = BenchResult(backend=backend, device=device, model=str(source),
                         model_sha256=sha256_file(source) if source.is_file() else "",
                         mode="stages" if stages else "inference")
    if stages:
        result.workers = max(1, workers or os.cpu_count() or 1)
        result.stages_ms, result.host_images_per_s = _stages(
            ws, session_for(choice, device=device, batch_size=1, compiled=compiled), source, images,
            result.workers)
    else:
        session = session_for(choice, device=device, compiled=compiled)
        static = session.info.batch_size
        sizes = _host_sizes(result, batch_sizes, static, device)
        if static is not None:
            result.skipped += [f"batch {b}: the model has a static batch of {static} "
                               "(export with --dynamic-batch to sweep)" for b in sizes if b != static]
            sizes = tuple(b for b in sizes if b == static)
            if not sizes:
                raise UsageError(result.skipped[0], hint=f"use --batch-sizes {static}")
        _sweep(result, sizes, lambda batch: _time_batch(session, batch, loop, warmup, max_seconds))
    _append(ws, result)
    return result


def run_precisions(ws: Workspace, *, backends: tuple[str, ...], precisions: tuple[str, ...],
                   device: str = "cpu", batch_sizes: tuple[int, ...] | None = None, loop: int = 100,
                   warmup: int = 10, max_seconds: float = 60.0, images: int = 10) -> BenchResult:
    """One table of speed against accuracy: every (backend, precision) pair asked for, timed as
    the inference mode times one model, and compared with onnxruntime fp32 on the first
    `images` prepared inputs (each output's cosine, float32's confident detections matched,
    and with annotations the box mAP of each). A pair this machine lacks is a refused row."""
    from ..errors import YedgeError

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
    checks = _agreement_inputs(ws, images)
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
                        row.agreement = _agree(ws, session, checks, expected)
                finally:
                    session.close()
            except UsageError as exc:
                row.status, row.reason = "refused", exc.one_line()
            except YedgeError as exc:
                row.status, row.reason = "failed", exc.one_line()
            except Exception as exc:  # a runtime's own error: the row says it, the others still run
                row.status, row.reason = "failed", f"{type(exc).__name__}: {str(exc).splitlines()[0][:200]}"
    _append(ws, result)
    return result


def _sweep_rows(rows: list[BenchRow], sizes, session, loop: int, warmup: int, max_seconds: float) -> None:
    static = session.info.batch_size
    for batch in sizes:
        if static is None or batch == static:
            rows.append(_time_batch(session, batch, loop, warmup, max_seconds))


def _agreement_inputs(ws: Workspace, images: int) -> list[tuple[np.ndarray, int, int, int | None]]:
    """The first prepared inputs with their image sizes and ids (annotated ones), or none."""
    from ..data import binio
    from ..data.coco import image_info, load_coco
    from ..model.config import INPUT_SIZE

    prep = ws.load(PrepRecord)
    if prep is None or prep.layout != "nchw":
        return []
    files = binio.list_input_files(ws.bin_dir)[:images]
    ids = ws.read_ids()
    coco = load_coco(prep.annotations) if prep.annotations and Path(prep.annotations).is_file() else None
    checks = []
    for pos, path in enumerate(files):
        data = np.fromfile(path, dtype=prep.dtype).reshape(sample_shape())
        info = image_info(coco, ids[pos]) if coco else None
        checks.append((data, info.width if info else INPUT_SIZE, info.height if info else INPUT_SIZE,
                       ids[pos] if info else None))
    return checks


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


def _agree(ws: Workspace, session, checks, expected) -> dict:
    from ..data.coco import load_coco
    from ..metrics.agreement import Agreement
    from ..model.contract import output_names

    prep = ws.load(PrepRecord)
    ids = [image_id for *_, image_id in checks]
    coco = load_coco(prep.annotations) if prep and any(i is not None for i in ids) else None
    layout = session.info.layout
    agreement = Agreement(HostPipeline(host_spec(ws, layout)), output_names(layout), coco)
    for (data, width, height, image_id), want in zip(checks, expected):
        agreement.add(want, _run_one(session, data), width, height, image_id)
    return agreement.finish().to_dict()


def _host_sizes(result: BenchResult, batch_sizes, static: int | None, device: str) -> tuple[int, ...]:
    """--batch-sizes, else the static batch, else the default sweep — on the CPU only its
    small sizes, saying so, since the large ones there would take many minutes."""
    if batch_sizes:
        return tuple(batch_sizes)
    if static:
        return (static,)
    if device != "cpu":
        return DEFAULT_BATCH_SIZES
    left_out = [b for b in DEFAULT_BATCH_SIZES if b not in CPU_BATCH_SIZES]
    result.skipped.append(f"batch {', '.join(map(str, left_out))}: left out of the default sweep on "
                          "the CPU (slow there); run them with --batch-sizes "
                          + ",".join(map(str, DEFAULT_BATCH_SIZES)))
    return CPU_BATCH_SIZES


def _sweep(result: BenchResult, sizes: tuple[int, ...], measure) -> None:
    """Rows for each batch size in turn. Ctrl-C keeps the rows that finished (the result is
    marked interrupted and names the sizes not measured); with none finished it propagates."""
    for pos, batch in enumerate(sizes):
        try:
            result.rows.append(measure(batch))
        except KeyboardInterrupt:
            if not result.rows:
                raise
            result.interrupted = True
            result.skipped.append(f"batch {', '.join(map(str, sizes[pos:]))}: not measured (interrupted)")
            return


def _time_batch(session, batch: int, loop: int, warmup: int, max_seconds: float) -> BenchRow:
    """Warm-up and timed runs share the --max-seconds budget, so a slow model cannot spend
    minutes warming up; at least one timed run always happens."""
    budget_end = time.perf_counter() + max_seconds
    data = _synthetic(batch, session.info.input_dtype, session.info.sample_shape)
    runs: list[RunTimes] = []
    with progress_bar(warmup + loop, f"bench batch {batch}") as advance:
        for _ in range(warmup):
            if time.perf_counter() >= budget_end:
                break
            session.run(data)
            advance(1)
        for _ in range(loop):
            runs.append(timed_run(session, data)[1])
            advance(1)
            if time.perf_counter() >= budget_end:
                break
    return row_from_times(batch, [r.compute_ms for r in runs], _mean([r.h2d_ms for r in runs]),
                          _mean([r.d2h_ms for r in runs]))


def _ascend(ws: Workspace, model: Path | None, device: str, batch_sizes, loop: int, warmup: int,
            max_seconds: float, mode: str) -> BenchResult:
    """Each batch size on its own .om (or the dynamic one with --dymBatch), through an
    InferSession loop or `python3 -m ais_bench --loop`."""
    from ..ascend import aisbench

    device_id = parse_devices(device)[0]
    mode = aisbench.resolve_mode(mode)
    convert = ws.load(ConvertRecord)
    oms = convert.oms if convert else []
    sizes = tuple(batch_sizes) if batch_sizes else tuple(
        sorted({m.batch_size for m in oms if m.batch_size}) or DEFAULT_BATCH_SIZES[:1])
    first = om_model(ws, model, sizes[0]).path
    result = BenchResult(backend="ascend", device=f"npu:{device_id}", model=str(first),
                         model_sha256=sha256_file(first), mode="inference")

    def measure(batch: int) -> BenchRow:
        from ..data import binio

        om = om_model(ws, model, batch).path
        aisbench.check_model(om)
        if mode == "api":
            with in_process(ws, Backend.ASCEND.value):
                session = open_session(om, device=str(device_id))
                try:
                    _static_batch_allows(session.info, om, batch)
                    return _time_batch(session, batch, loop, warmup, max_seconds)
                finally:
                    session.close()
        # the .om's own description says whether it takes --dymBatch (a static one refuses it)
        info = aisbench.describe(om, device_id, ws.log("ais_bench_describe"))
        _static_batch_allows(info, om, batch)
        # --output only for the summary's per-run times: the pure-inference outputs ais_bench
        # also saves there (a batch's full outputs) are removed at once
        dirname = f"bench_bs{batch}"
        out_dir = aisbench.private_folder(ws.ais_bench_staging).absolute()
        argv = aisbench.cli_argv(om.absolute(), output=out_dir, dirname=dirname,
                                 device=device_id, loop=loop, batch_size=batch,
                                 dym_batch=batch if info.batch_size is None else None, warmup=warmup,
                                 all_summary=True)
        try:
            stdout = aisbench.run_cli(argv, cwd=out_dir, log_path=ws.log(f"ais_bench_{dirname}"))
            return _row_from_aisbench(batch, loop, stdout, binio.summary_path(out_dir / dirname))
        finally:
            shutil.rmtree(out_dir / dirname, ignore_errors=True)
            binio.summary_path(out_dir / dirname).unlink(missing_ok=True)

    _sweep(result, sizes, measure)
    return result


def _static_batch_allows(info, om: Path, batch: int) -> None:
    if info.batch_size is not None and info.batch_size != batch:
        raise UsageError(f"{om.name} has a static batch of {info.batch_size}, not {batch}",
                         hint=f"use --batch-sizes {info.batch_size}, or convert with --dynamic-batch")


def _row_from_aisbench(batch: int, loop: int, stdout: str, summary_file: Path) -> BenchRow:
    """From the summary JSON's per-run times when ais_bench wrote one, else its printed block
    (the copies' lines there only with --display_all_summary)."""
    from ..ascend import aisbench

    printed = aisbench.parse_summary(stdout)
    copies = {name: (printed.get(name) or {}).get("mean") for name in ("H2D_latency", "D2H_latency")}
    if summary_file.exists():
        written = json.loads(summary_file.read_text())
        times = written.get("npu_compute_time_list") or []
        if times:
            copies = {name: (written.get(name) or {}).get("mean") if (written.get(name) or {}).get("count")
                      else copies[name] for name in copies}
            return row_from_times(batch, [float(t) for t in times], copies["H2D_latency"], copies["D2H_latency"])
    compute = printed["NPU_compute_time"]
    mean = compute["mean"]
    return BenchRow(batch_size=batch, loops=loop, throughput=round(1000 * batch / mean, 2) if mean else 0.0,
                    latency_mean_ms=round(mean, 2), latency_p50_ms=round(compute["median"], 2),
                    latency_p90_ms=None, latency_p99_ms=round(compute["percentile(99%)"], 2),
                    h2d_mean_ms=_rounded(copies["H2D_latency"]), d2h_mean_ms=_rounded(copies["D2H_latency"]))


def _stages(ws: Workspace, session, source: Path, images: int, workers: int) -> tuple[dict, dict]:
    """Per-image milliseconds of each stage of the whole path on the first prepared inputs (one
    host worker with every core's thread, as `eval --workers 1`; the first image is run once
    untimed), and the images per second the host part sustains on 1 and on `workers` worker
    processes (the model's outputs saved in a temporary folder, read back as eval reads them)."""
    import tempfile

    from ..data import binio
    from ..data.coco import image_info, load_coco

    ids = ws.read_ids()[:images]
    if not ids:
        raise InputError("no prepared inputs", path=ws.ids_path, hint="run `yedge prep` first")
    dtype = (ws.load(PrepRecord) or PrepRecord()).dtype
    cores = os.cpu_count() or 1
    spec = host_spec(ws, session.info.layout, threads=cores, model=source)
    pipeline = HostPipeline(spec)
    coco = load_coco(annotations_for(ws, None))
    totals = StageTimes()
    files = binio.list_input_files(ws.bin_dir)
    with tempfile.TemporaryDirectory(prefix="yedge-bench-") as folder:
        saved: list[tuple[str, int, int]] = []
        with progress_bar(len(ids), "bench stages") as advance:
            for pos, image_id in enumerate(ids):
                t = time.perf_counter()
                data = binio.read_batch(binio.group([files[pos]], 1)[0], np.dtype(dtype), sample_shape())
                read = time.perf_counter() - t
                t = time.perf_counter()
                outputs = session.run(data)
                inference = time.perf_counter() - t
                times = StageTimes(read=read, inference=inference)
                info = image_info(coco, image_id)
                if pos == 0:  # warm-up: first calls fill caches and start thread pools
                    pipeline.to_coco(image_id, pipeline(outputs, info.width, info.height))
                pipeline.to_coco(image_id, pipeline(outputs, info.width, info.height, times), times)
                totals.add(times)
                np.savez(Path(folder) / f"{pos}.npz", *outputs)
                saved.append((str(Path(folder) / f"{pos}.npz"), info.width, info.height))
                advance(1)
        with stage(f"host part on 1 and {workers} worker(s)"):
            rates = {f"{n} worker{'s' if n > 1 else ''}": round(sustained_rate(
                replace(spec, threads=max(1, cores // n)), saved, n), 2) for n in sorted({1, workers})}
    stages = totals.ms_per(len(ids))
    stages["host_total"] = round(sum(stages[k] for k in HOST_STAGES), 2)
    return stages, rates


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


STREAM_BENCH_STAGES = ("decode", "inference", *HOST_STAGES, "write")


def _stream(ws: Workspace, engine: streaming.Engine, recipe: SessionRecipe, images: int) -> dict[str, float]:
    """The streaming pipeline on the prepared images (their first `images`), else on synthetic
    640×480 frames: each stage's busy milliseconds per image — decode+preprocess and the host
    stages run on `workers` processes each, inference and writing (COCO entries as JSON) in this
    one — and the pipeline's wall milliseconds per image. The stage whose busy time divided by
    its processes is largest bounds the wall time."""
    from ..metrics.results import coco_entries

    prep = ws.load(PrepRecord)
    if prep is not None and prep.images and Path(prep.images).is_dir():
        from ..data.coco import image_info, load_coco

        coco = load_coco(annotations_for(ws, None))
        infos = [image_info(coco, i) for i in ws.read_ids()[:images]]
        items = [Item(pos, str(Path(prep.images) / info.file_name), size=(info.width, info.height))
                 for pos, info in enumerate(infos)]
    else:
        rng = np.random.default_rng(0)
        items = [Item(i, "synthetic", i, pixels=rng.integers(0, 256, (480, 640, 3), dtype=np.uint8))
                 for i in range(images)]
    totals = StageTimes(dict.fromkeys(STREAM_BENCH_STAGES, 0.0))
    started = time.perf_counter()
    with engine.open(recipe, lambda info: host_spec(ws, info.layout)) as run, \
            contextlib.closing(run.predictions(items)) as predictions, \
            progress_bar(len(items), f"bench stream ({engine.where})") as advance:
        for prediction in predictions:
            if prediction.error is not None:
                raise InputError(prediction.error, path=prediction.item.source, hint="replace the image")
            assert prediction.detections is not None
            with totals.time("write"):
                json.dumps(coco_entries(prediction.item.index, prediction.detections))
            totals.add(prediction.times)
            advance(1)
    wall = time.perf_counter() - started
    stages = totals.ms_per(len(items))
    stages["wall"] = round(wall / len(items) * 1000, 2)
    stages["images_per_second"] = round(len(items) / wall, 2)
    return stages


def _append(ws: Workspace, result: BenchResult) -> None:
    """Each run is appended to results/bench.json, with what produced it."""
    path = ws.bench_log
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({**result.to_dict(), "versions": versions(),
                 "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    atomic_write_text(path, json.dumps(runs, indent=2) + "\n")
    ws.save(BenchRecord(model=result.model, model_sha256=result.model_sha256, backend=result.backend,
                        device=result.device, mode=result.mode, log=ws.relative(path), runs=len(runs)))
