"""`yedge infer`: run the model over `inputs/bin_file` with ais_bench's grouping and file naming,
so `eval` reads every backend's outputs the same way. On Ascend, ais_bench itself runs it
(through its Python API, or `python3 -m ais_bench`)."""
from __future__ import annotations

import dataclasses
import json
import shutil
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

from ..backends import ModelInfo, RunTimes
from ..choices import AisBenchMode, Backend, Engine, InputDtype, InputLayout, Precision
from ..console import progress_bar
from ..data import binio
from ..errors import InputError, UsageError
from ..model.contract import output_bytes
from ..provenance import RunRecord, model_origin, prepared_fingerprint, read_run, write_run
from ..records import InferRecord, PrepRecord
from ..resolve import ModelChoice, choose_backend, model_for, parse_devices
from ..stream.engine import engine_for, recipe_for
from ..stream.items import Frames, Item
from ..stream.stages import batching
from ..workspace import Workspace, atomic_path, remove_stale_temp, sha256_file


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
    precision: str = Precision.FP32.value

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class _Times:
    """A run's times as ais_bench's summary reports them: the compute time of each batch, and
    the copies' stats where the device reported them."""

    compute_ms: list[float] = field(default_factory=list)
    h2d: list[dict] = field(default_factory=list)  # stats of each part of the run
    d2h: list[dict] = field(default_factory=list)

    @classmethod
    def of(cls, runs: list[RunTimes]) -> _Times:
        h2d = [r.h2d_ms for r in runs if r.h2d_ms is not None]
        d2h = [r.d2h_ms for r in runs if r.d2h_ms is not None]
        return cls([r.compute_ms for r in runs], [binio.timing_stats(h2d)], [binio.timing_stats(d2h)])


@dataclass
class _Ran:
    """What a backend's run produced, for the summary and the manifest."""

    model: Path
    layout: str
    batch_size: int
    device: str
    computed: int
    times: _Times
    options: dict


@dataclass(frozen=True)
class InferOptions:
    """What runs the model over the prepared inputs, and where its outputs go, with each default
    (the CLI reads them here)."""

    backend: str = Backend.AUTO.value
    model: Path | None = None
    device: str = "cpu"                  # cpu or cuda; for ascend NPU ids (0 or 0,1)
    precision: str | None = None         # None: fp32, or on ascend the .om's own
    batch_size: int | None = None        # None: the model's static batch, else 1
    compiled: bool = False               # torch.compile (the torch backend on CUDA)
    ais_bench: str = AisBenchMode.AUTO.value
    run_name: str | None = None          # the folder under outputs/; None: the backend's name
    inputs: Path | None = None           # None: the workspace's inputs/bin_file
    overwrite: bool = False              # replace a run folder's outputs of another model or inputs


def run(ws: Workspace, options: InferOptions = InferOptions()) -> InferResult:
    backend, model, device, precision, batch_size, compiled, ais_bench, run_name, inputs, overwrite = (
        options.backend, options.model, options.device, options.precision, options.batch_size,
        options.compiled, options.ais_bench, options.run_name, options.inputs, options.overwrite)
    if batch_size is not None and batch_size < 1:
        raise UsageError(f"--batch-size must be at least 1, got {batch_size}",
                         hint="e.g. --batch-size 8, or drop it for the model's batch")
    backend = choose_backend(backend, model)
    run_name = run_name or backend
    if backend == Backend.ASCEND.value:  # ais_bench sees it in --output_dirname
        from ..ascend.aisbench import check_name

        check_name(run_name, "--run")
    prep = ws.load(PrepRecord) or PrepRecord()
    input_dtype, input_layout = prep.dtype, prep.layout
    choice = model_for(ws, backend, model, batch_size, precision, device)
    in_dir = Path(inputs) if inputs else ws.bin_dir
    files = binio.list_input_files(in_dir)
    run_dir = ws.run_dir(run_name)
    if backend != "ascend" and input_layout != "nchw":
        raise InputError("the inputs were prepared as nhwc pixels, which only an .om converted with "
                         "--aipp takes", path=in_dir, hint="rerun `yedge prep` without --layout nhwc")
    remove_stale_temp(run_dir)
    started = time.perf_counter()
    fingerprint = prepared_fingerprint(ws) if inputs is None else None
    claim = _check_run_dir(ws, run_dir, choice.path, fingerprint, overwrite, choice.precision)
    if backend == "ascend":
        ran = _run_ascend(ws, choice, device, batch_size, files, in_dir, claim, input_dtype,
                          input_layout, ais_bench)
    else:
        ran = _run_host(ws, choice, backend, device, batch_size, files, claim, input_dtype, compiled)
    record = claim.record
    seconds = time.perf_counter() - started
    count = len(output_bytes(ran.layout))
    filesinfo = {str(i): {"infiles": [str(f)],
                          "outfiles": [str(binio.output_path(run_dir, f, k)) for k in range(count)]}
                 for i, f in enumerate(files)}
    summary = _kept_summary(run_dir) if ran.computed == 0 else None
    if summary is None:
        summary = binio.summary(filesinfo, ran.times.compute_ms, ran.batch_size,
                                binio.merge_stats(ran.times.h2d), binio.merge_stats(ran.times.d2h))
        binio.write_json(binio.summary_path(run_dir), summary)
    result = InferResult(run=run_name, run_dir=str(run_dir), backend=backend, device=ran.device,
                         model=str(ran.model), layout=ran.layout, batch_size=ran.batch_size,
                         samples=len(files), computed=ran.computed,
                         skipped_existing=len(files) - ran.computed, seconds=round(seconds, 2),
                         precision=choice.precision,
                         throughput=round(summary["throughput"], 2))
    if record is not None:
        record.backend, record.device, record.batch_size, record.layout = \
            backend, ran.device, ran.batch_size, ran.layout
        write_run(run_dir, record)
    ws.save(InferRecord(
        bin_dir=ws.relative(in_dir), model=str(ran.model.absolute()),
        model_sha256=record.model_sha256 if record else None,
        weights_sha256=record.weights_sha256 if record else None, inputs_fingerprint=fingerprint,
        backend=backend, device=ran.device, half=choice.precision == Precision.FP16.value,
        precision=choice.precision, compiled=compiled, batch_size=ran.batch_size,
        layout=ran.layout,
        run=run_name, run_dir=ws.relative(run_dir), summary=ws.relative(binio.summary_path(run_dir)),
        **ran.options))
    return result


def _kept_summary(run_dir: Path) -> dict | None:
    """The run's summary as its last computing run wrote it: a rerun that finds every output
    there computes nothing, and its empty times would replace the ones measured."""
    try:
        return json.loads(binio.summary_path(run_dir).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class _Claim:
    """The run folder's new record, written (and, with --overwrite, the outputs of another model
    or inputs removed) only once the session has opened and accepted the inputs: a refused run
    changes no file."""

    run_dir: Path
    record: RunRecord | None
    replace: bool = False

    def take(self) -> None:
        if self.record is None:
            return
        if self.replace:
            for old in self.run_dir.glob("*.bin"):
                old.unlink()
        write_run(self.run_dir, self.record)


def _check_run_dir(ws: Workspace, run_dir: Path, model: Path, fingerprint: str | None,
                   overwrite: bool, precision: str) -> _Claim:
    """A run folder holds the outputs of one model in one precision on one set of prepared
    inputs: resuming into outputs of another model, precision or inputs would mix them silently,
    so that is refused (or, with overwrite, the old outputs are replaced when the run starts)."""
    if not Path(model).is_file():
        return _Claim(run_dir, None)  # opening the model reports it
    digest = sha256_file(model)
    previous = read_run(run_dir)
    replace = False
    if previous is not None and any(run_dir.glob("*.bin")):
        changed = [what for what, same in (("another model", previous.model_sha256 == digest),
                                           ("other prepared inputs",
                                            previous.inputs_fingerprint in (None, fingerprint)),
                                           (f"another precision ({previous.precision})",
                                            previous.precision in (None, precision)))
                   if not same]
        if changed and not overwrite:
            raise InputError(f"this run folder holds outputs of {' and '.join(changed)}",
                             path=run_dir, hint="pass --run NEW_NAME for a new folder, or "
                                                "--overwrite to replace them")
        replace = bool(changed)
    origin = model_origin(ws, model, digest)
    record = RunRecord(model=ws.relative(model), model_sha256=digest,
                       weights=origin.weights if origin else None,
                       weights_sha256=origin.weights_sha256 if origin else None,
                       inputs_fingerprint=fingerprint, precision=precision)
    return _Claim(run_dir, record, replace)


def _pending(files: list[Path], run_dir: Path, layout: str, per_batch: int):
    """Batches with at least one sample whose outputs are missing or of the wrong size."""
    return [b for b in binio.group(files, per_batch)
            if any(binio.sample_dtype(run_dir, binio.output_stem(f), layout) is None for f in b.files)]


def _run_host(ws: Workspace, choice: ModelChoice, backend: str, device: str, batch_size, files, claim: _Claim,
              input_dtype: str, compiled: bool) -> _Ran:
    def check(info: ModelInfo) -> None:
        _check_session(info, choice.path, input_dtype, batch_size)

    ran = _run_stream(ws, choice, device, batch_size, files, claim, check,
                      lambda per_batch: f"infer {backend} ({device}, {choice.precision}, batch {per_batch})",
                      compiled)
    return dataclasses.replace(ran, device=device, options={"config": choice.export.config or "auto"})


def _check_session(info, source: Path, input_dtype: str, batch_size: int | None) -> None:
    info.check_inputs(input_dtype, source)
    if info.batch_size is not None and batch_size not in (None, info.batch_size):
        raise UsageError(f"the model has a static batch of {info.batch_size}, not {batch_size}",
                         hint="drop --batch-size, or export (or convert) with dynamic batch")


def _run_stream(ws: Workspace, choice: ModelChoice, device: str, batch_size: int | None, files: list[Path],
                claim: _Claim, check: Callable[[ModelInfo], None], label: Callable[[int], str],
                compiled: bool = False) -> _Ran:
    """The pending batches through the local engine (docs/architecture.md, Streaming) with no
    host part: its replica in this process, or one worker process per NPU of --device 0,1. Each
    batch is one source of the stream, so it runs whole on one replica as ais_bench groups it
    (binio.group); each sample's outputs are written under ais_bench's names as they come back.
    The run folder is claimed only once the model has accepted the inputs (`check`)."""
    engine = engine_for(ws, Engine.LOCAL.value, backend=choice.backend or "", device=device)
    run_dir, runs, computed = claim.run_dir, [], 0

    def accept(info: ModelInfo) -> None:
        check(info)
        claim.take()

    with engine.open(recipe_for(ws, choice, device, batch_size, compiled=compiled), accept) as run:
        todo = _pending(files, run_dir, run.info.layout, run.batch_size)
        units = [Frames(f"batch {n}", tuple(Item(0, str(f), prepared=True) for f in batch.files))
                 for n, batch in enumerate(todo)]
        run_dir.mkdir(parents=True, exist_ok=True)
        with progress_bar(len(files), label(run.batch_size)) as advance:
            advance(len(files) - sum(len(b.files) for b in todo))
            for prediction in run.predictions(units):
                for k, output in enumerate(prediction.outputs or ()):
                    with atomic_path(binio.output_path(run_dir, Path(prediction.item.source), k)) as tmp:
                        tmp.write_bytes(output.data)
                if prediction.batch_times is not None:
                    runs.append(prediction.batch_times)
                computed += 1
                advance(1)
    return _Ran(choice.path, run.info.layout, run.batch_size, run.device, computed, _Times.of(runs), {})


def _run_ascend(ws, choice: ModelChoice, device, batch_size, files, in_dir, claim: _Claim, input_dtype,
                input_layout, ais_bench_mode):
    """What the .om takes is read from the .om itself — its session's description (API), or
    ais_bench's (CLI) — never assumed from the manifest: a static .om refuses --dymBatch, and
    inputs of another dtype but the right size would be read silently."""
    from ..ascend import aisbench, npu_smi

    om, known, run_dir = choice.path, choice.om, claim.run_dir
    aisbench.check_model(om)
    aisbench.check_inputs(in_dir, files)
    soc_version = known.soc_version if known else None
    if soc_version:
        here = npu_smi.detect_soc()
        if here != soc_version:
            raise InputError(f"this .om was built for {soc_version} but this machine's NPU "
                             f"is {here}", path=om, hint=f"run `yedge convert --soc-version {here}`")
    devices = parse_devices(device)
    mode = aisbench.resolve_mode(ais_bench_mode)
    label = "npu:" + ",".join(map(str, devices))
    extra = {"ais_bench": mode, "soc_version": soc_version}
    if mode == AisBenchMode.API.value:  # several NPUs: one process each (aclruntime never releases the GIL)
        def check(info: ModelInfo) -> None:
            _check_om(info, om, input_dtype, input_layout, batch_size)

        ran = _run_stream(ws, choice, device, batch_size, files, claim, check,
                          lambda per_batch: f"infer ascend ({label}, batch {per_batch})")
        return dataclasses.replace(ran, device=label, options=extra)
    info = aisbench.describe(om, devices[0], ws.log("ais_bench_describe"))
    if info.gives_key_state:
        raise UsageError("ais_bench's CLI would write a video model's key state among the outputs", path=om,
                         hint="infer it with --ais-bench api (each image a keyframe)")
    _check_om(info, om, input_dtype, input_layout, batch_size)
    per_batch, _ = batching(info, batch_size, keep_images=False)
    claim.take()
    todo = _pending(files, run_dir, info.layout, per_batch)
    pending = [f for b in todo for f in b.files]
    times = _run_aisbench_cli(ws, om, pending, devices, run_dir, per_batch,
                              dym_batch=per_batch if info.batch_size is None else None,
                              total=len(files), label=f"infer ascend ({label}, batch {per_batch})")
    return _Ran(om, info.layout, per_batch, label, len(pending), times, extra)


def _check_om(info, om: Path, input_dtype: str, input_layout: str, batch_size: int | None) -> None:
    """The prepared inputs against what the .om takes (an AIPP .om takes uint8 HWC pixels)."""
    takes = (info.input_dtype, InputLayout.NHWC.value if info.sample_shape[-1] == 3 else InputLayout.NCHW.value)
    if takes != (input_dtype, input_layout):
        raise InputError(f"this .om takes {' '.join(takes)} inputs but they were prepared as "
                         f"{input_dtype} {input_layout}", path=om,
                         hint=f"rerun `yedge prep --dtype {takes[0]} --layout {takes[1]}`"
                              if takes[0] in InputDtype.values() else
                              f"convert the .om for {input_dtype} input (this one takes {takes[0]})")
    _check_session(info, om, input_dtype, batch_size)


def _split_contiguous(items: list, parts: int) -> list[list]:
    """Contiguous, nearly equal shares (one per device)."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(parts)]


def _run_aisbench_cli(ws, om, pending: list[Path], devices: list[int], run_dir: Path, per_batch: int,
                      dym_batch: int | None, total: int, label: str) -> _Times:
    """`python3 -m ais_bench` per device on its share of the pending inputs — in several runs
    when the comma-joined --input would pass the OS's limit on one argument — each into its own
    folder under a staging folder of ais_bench's own; the outputs then move into the run folder."""
    from ..ascend import aisbench

    run_dir.mkdir(parents=True, exist_ok=True)
    staging_root = aisbench.private_folder(ws.ais_bench_staging).absolute()
    jobs = [(d, share) for d, share in zip(devices, _split_contiguous(pending, len(devices))) if share]

    def work(job) -> _Times:
        device_id, share = job
        spent = _Times()
        for part, chunk in enumerate(aisbench.input_chunks([p.absolute() for p in share], per_batch)):
            dirname = f"{run_dir.name}_device{device_id}_{part}"
            staging = staging_root / dirname
            shutil.rmtree(staging, ignore_errors=True)
            argv = aisbench.cli_argv(om.absolute(), inputs=chunk, output=staging_root, dirname=dirname,
                                     device=device_id, dym_batch=dym_batch)
            aisbench.run_cli(argv, cwd=staging_root, log_path=ws.log(f"ais_bench_{dirname}"))
            for produced in staging.glob("*.bin"):
                shutil.move(str(produced), run_dir / produced.name)
            summary_file = binio.summary_path(staging)
            if summary_file.exists():
                written = json.loads(summary_file.read_text())
                spent.compute_ms += [float(t) for t in written.get("npu_compute_time_list", [])]
                spent.h2d.append(written.get("H2D_latency") or {})
                spent.d2h.append(written.get("D2H_latency") or {})
            summary_file.unlink(missing_ok=True)
            shutil.rmtree(staging, ignore_errors=True)
        return spent

    times = _Times()
    with progress_bar(total, label) as advance:
        advance(total - len(pending))
        with ThreadPoolExecutor(max(1, len(jobs))) as pool:  # each device's runs are processes
            for (_, share), spent in zip(jobs, pool.map(work, jobs)):
                times.compute_ms += spent.compute_ms
                times.h2d += spent.h2d
                times.d2h += spent.d2h
                advance(len(share))
    return times
