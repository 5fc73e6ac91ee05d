"""bench --backend ascend: the .om's speed per batch size, through ais_bench's API or its CLI."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from ...backends import open_session
from ...choices import Backend
from ...errors import UsageError
from ...records import ConvertRecord
from ...resolve import in_process, om_model, parse_devices
from ...workspace import Workspace, sha256_file
from .common import DEFAULT_BATCH_SIZES, BenchOptions, BenchResult, BenchRow, rounded, row_from_times, sweep, time_batch


def run_ascend(ws: Workspace, options: BenchOptions) -> BenchResult:
    """Each batch size on its own .om (or the dynamic one with --dymBatch), through an
    InferSession loop or `python3 -m ais_bench --loop`."""
    from ...ascend import aisbench

    model, loop, warmup, max_seconds = options.model, options.loop, options.warmup, options.max_seconds

    device_id = parse_devices(options.device)[0]
    mode = aisbench.resolve_mode(options.ais_bench)
    convert = ws.load(ConvertRecord)
    oms = convert.oms if convert else []
    sizes = tuple(options.batch_sizes) if options.batch_sizes else tuple(
        sorted({m.batch_size for m in oms if m.batch_size}) or DEFAULT_BATCH_SIZES[:1])
    first = om_model(ws, model, sizes[0]).path
    result = BenchResult(backend="ascend", device=f"npu:{device_id}", model=str(first),
                         model_sha256=sha256_file(first), mode="inference")

    def measure(batch: int) -> BenchRow:
        from ...data import binio

        om = om_model(ws, model, batch).path
        aisbench.check_model(om)
        if mode == "api":
            with in_process(ws, Backend.ASCEND.value):
                session = open_session(om, device=str(device_id))
                try:
                    _static_batch_allows(session.info, om, batch)
                    return time_batch(session, batch, loop, warmup, max_seconds)
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
            return row_from_aisbench(batch, loop, stdout, binio.summary_path(out_dir / dirname))
        finally:
            shutil.rmtree(out_dir / dirname, ignore_errors=True)
            binio.summary_path(out_dir / dirname).unlink(missing_ok=True)

    sweep(result, sizes, measure)
    return result


def _static_batch_allows(info, om: Path, batch: int) -> None:
    if info.batch_size is not None and info.batch_size != batch:
        raise UsageError(f"{om.name} has a static batch of {info.batch_size}, not {batch}",
                         hint=f"use --batch-sizes {info.batch_size}, or convert with --dynamic-batch")


def row_from_aisbench(batch: int, loop: int, stdout: str, summary_file: Path) -> BenchRow:
    """From the summary JSON's per-run times when ais_bench wrote one, else its printed block
    (the copies' lines there only with --display_all_summary)."""
    from ...ascend import aisbench

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
                    h2d_mean_ms=rounded(copies["H2D_latency"]), d2h_mean_ms=rounded(copies["D2H_latency"]))
