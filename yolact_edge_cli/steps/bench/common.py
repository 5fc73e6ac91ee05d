"""What every bench mode shares: its options, the result rows, timing a batch size, sweeping
batch sizes, and appending a run to results/bench.json."""
from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ... import plots
from ...backends import RunTimes, timed_run
from ...choices import AisBenchMode, Backend, Engine
from ...console import progress_bar
from ...errors import UsageError
from ...records import BenchRecord
from ...workspace import Workspace, append_to_log

if TYPE_CHECKING:
    from ...stream.ray_cluster import RaySettings

DEFAULT_BATCH_SIZES = (1, 4, 8, 16, 32, 64)


CPU_BATCH_SIZES = (1, 4, 8)  # the larger ones take minutes each on a CPU


@dataclass(frozen=True)
class BenchOptions:
    """What `yedge bench` measures, and how, with each default (the CLI reads them here)."""

    # the model, and what runs it
    backend: str = Backend.AUTO.value
    model: Path | None = None
    device: str = "cpu"
    precision: str | None = None
    compiled: bool = False                 # torch.compile (the torch backend on CUDA)
    ais_bench: str = AisBenchMode.AUTO.value
    # inference: each batch size timed `loop` times after `warmup` untimed runs, within
    # `max_seconds` (None: the model's static batch, or a list for a dynamic one)
    batch_sizes: tuple[int, ...] | None = None
    loop: int = 100
    warmup: int = 10
    max_seconds: float = 60.0
    keyframe_interval: int | None = None   # a video model's schedule (bench/video.py)
    # the whole path on `images` images: per stage on prepared inputs, or the streaming engine's
    stages: bool = False
    stream: bool = False
    images: int = 10
    workers: int | None = None             # host worker processes; None: one per CPU
    engine: str = Engine.LOCAL.value       # --stream's
    ray: RaySettings | None = None
    pictures: bool = True                  # drawn beside results/bench.json

    @property
    def worker_count(self) -> int:
        """The host workers of --stages and --stream: --workers, else one per CPU."""
        return max(1, self.workers or os.cpu_count() or 1)

    def check(self) -> None:
        if self.loop < 1 or self.warmup < 0:
            raise UsageError("--loop must be ≥ 1 and --warmup ≥ 0", hint="e.g. --loop 100 --warmup 10")
        if self.stream and self.stages:
            raise UsageError("--stream and --stages are two views of the whole path", hint="pick one")


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
    video: dict | None = None  # a video model's passes and schedule (video.VideoTimes)
    pictures: list[str] = field(default_factory=list)  # drawn from every run of results/bench.json

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
                    h2d_mean_ms=rounded(h2d_mean_ms), d2h_mean_ms=rounded(d2h_mean_ms))


def rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 3)


def mean_of(values: list[float | None]) -> float | None:
    known = [v for v in values if v is not None]
    return float(np.mean(known)) if known else None


def synthetic(batch: int, dtype: str, sample: tuple[int, ...]) -> np.ndarray:
    rng = np.random.default_rng(0)
    shape = (batch, *sample)
    if dtype == "uint8":
        return rng.integers(0, 256, shape, dtype=np.uint8)
    return rng.standard_normal(shape, dtype=np.float32)


def host_sizes(result: BenchResult, batch_sizes, static: int | None, device: str) -> tuple[int, ...]:
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


def sweep(result: BenchResult, sizes: tuple[int, ...], measure) -> None:
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


def time_batch(session, batch: int, loop: int, warmup: int, max_seconds: float) -> BenchRow:
    """Warm-up and timed runs share the --max-seconds budget, so a slow model cannot spend
    minutes warming up; at least one timed run always happens."""
    budget_end = time.perf_counter() + max_seconds
    data = synthetic(batch, session.info.input_dtype, session.info.sample_shape)
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
    return row_from_times(batch, [r.compute_ms for r in runs], mean_of([r.h2d_ms for r in runs]),
                          mean_of([r.d2h_ms for r in runs]))


def append(ws: Workspace, result: BenchResult, pictures: bool) -> None:
    """Each run is appended to results/bench.json, with what produced it; then, unless
    `pictures` is off, every run there is drawn beside it (docs/pictures.md §4)."""
    path = ws.bench_log
    entry = result.to_dict()
    del entry["pictures"]  # drawn from the log, not part of it
    runs = append_to_log(path, entry)
    ws.save(BenchRecord(model=result.model, model_sha256=result.model_sha256, backend=result.backend,
                        device=result.device, mode=result.mode, log=ws.relative(path), runs=len(runs)))
    if pictures and plots.available():
        result.pictures = [ws.relative(p) for p in plots.bench_pictures(ws.results_dir, runs)]
