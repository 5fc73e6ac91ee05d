"""`bench`: every field in the table and JSON, the batch sweep, --stages, and the run log."""
import json
import time
from types import SimpleNamespace

import pytest

from yolact_edge_cli.backends import ModelInfo, open_session
from yolact_edge_cli.errors import UsageError
from yolact_edge_cli.records import ExportRecord
from yolact_edge_cli.resolve import ModelChoice
from yolact_edge_cli.steps import bench, prep
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, run_cli

ROW_FIELDS = {"batch_size", "loops", "throughput", "latency_mean_ms", "latency_p50_ms",
              "latency_p90_ms", "latency_p99_ms", "h2d_mean_ms", "d2h_mean_ms"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, exported):
    root = tmp_path_factory.mktemp("bench")
    images = copy_sample_images(root / "images")
    ws = exported(root / "ws", "yolact_edge_mobilenetv2_config", dynamic_batch=True)
    prep.run(ws, images, DATA / "golden" / "eval_mini" / "instances_mini.json", prep.PrepOptions(workers=1))
    return ws


def test_batch_sweep_json_and_log(workspace):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--batch-sizes", "1,2", "--loop", "3",
                   "--warmup", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["backend"] == "onnxruntime" and result["device"] == "cpu"
    assert len(result["model_sha256"]) == 64 and result["mode"] == "inference"
    assert [row["batch_size"] for row in result["rows"]] == [1, 2]
    for row in result["rows"]:
        assert set(row) == ROW_FIELDS
        assert row["h2d_mean_ms"] is None and row["d2h_mean_ms"] is None  # no device copies on the host
        assert row["loops"] == 3 and row["throughput"] > 0
        assert row["latency_p50_ms"] <= row["latency_p99_ms"]
        assert row["throughput"] == pytest.approx(1000 * row["batch_size"] / row["latency_mean_ms"], rel=0.01)
    log = json.loads((workspace.results_dir / "bench.json").read_text())
    assert log[-1]["rows"] == result["rows"]
    assert {"yedge", "onnxruntime", "torch"} <= set(log[-1]["versions"])
    assert result["pictures"] == ["results/bench_throughput.png", "results/bench_latency.png"]
    assert all((workspace.root / p).stat().st_size > 0 for p in result["pictures"])


def test_table_output(workspace):
    proc = run_cli("-w", workspace.root, "bench", "--batch-sizes", "1", "--loop", "2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    for header in ("batch", "loops", "img/s", "mean ms", "p50 ms", "p90 ms", "p99 ms"):
        assert header in proc.stdout
    runs = json.loads((workspace.results_dir / "bench.json").read_text())
    assert len(runs) >= 1 and runs[-1]["rows"][0]["loops"] == 2
    assert "pictures" not in runs[-1]  # drawn from the file, not part of it


@pytest.mark.slow
def test_stages(workspace):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--stages", "--num-images", "2", "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    stages = result["stages_ms"]
    assert set(stages) == {"read", "inference", "heads", "detect", "masks", "json", "host_total"}
    assert all(value > 0 for value in stages.values())
    rates = result["host_images_per_s"]  # measured on a pool of each size
    assert set(rates) == {"1 worker", "2 workers"} and all(value > 0 for value in rates.values())
    assert result["workers"] == 2


def test_torch_backend_and_static_batch(tmp_path, exported):
    ws = exported(tmp_path / "ws", "yolact_edge_mobilenetv2_config", batch_size=2)
    proc = run_cli("-w", ws.root, "--json", "bench", "--loop", "2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    assert [row["batch_size"] for row in json.loads(proc.stdout)["rows"]] == [2]
    proc = run_cli("-w", ws.root, "--json", "bench", "--backend", "torch", "--batch-sizes", "1",
                   "--loop", "2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["backend"] == "torch"
    proc = run_cli("-w", ws.root, "bench", "--batch-sizes", "4")
    assert_clean_failure(proc, "static batch of 2", "--batch-sizes 2", code=2)


def test_bad_batch_sizes_and_missing_cuda(workspace):
    proc = run_cli("-w", workspace.root, "bench", "--batch-sizes", "1,x")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    import torch

    if not torch.cuda.is_available():
        proc = run_cli("-w", workspace.root, "infer", "--backend", "torch", "--device", "cuda")
        assert_clean_failure(proc, "CUDA is not available", code=4)


class FakeSession:
    """Counts runs of a tiny dynamic-batch model; `interrupt_at` raises Ctrl-C on that batch size."""

    def __init__(self, interrupt_at: int | None = None, on_run=lambda: None):
        self.info = ModelInfo(batch_size=None, input_dtype="float32", layout="fpn", output_names=(),
                              sample_shape=(3, 4, 4))
        self.device = "cpu"
        self.runs: list[int] = []
        self._interrupt_at = interrupt_at
        self._on_run = on_run

    def run(self, batch):
        if len(batch) == self._interrupt_at:
            raise KeyboardInterrupt
        self.runs.append(len(batch))
        self._on_run()
        return []

    def close(self) -> None:
        pass


@pytest.fixture
def fake_host(tmp_path, monkeypatch):
    """bench.run on the host path with a FakeSession instead of an exported model."""
    holder = {}

    def use(session: FakeSession) -> Workspace:
        holder["session"] = session
        return Workspace(tmp_path / "ws")

    monkeypatch.setattr(bench, "host_model",
                        lambda ws, backend, model, precision: ModelChoice(tmp_path / "m.onnx", ExportRecord()))
    monkeypatch.setattr(bench, "session_for", lambda *a, **k: holder["session"])
    return use


@pytest.fixture
def fake_ascend(tmp_path, monkeypatch):
    """bench.run's ascend loop (API mode) with a FakeSession per batch size."""
    from yolact_edge_cli.ascend import aisbench
    from yolact_edge_cli.backends import ascend

    om = tmp_path / "m.om"
    om.write_bytes(b"om")
    holder = {}
    monkeypatch.setattr(aisbench, "resolve_mode", lambda mode: "api")
    monkeypatch.setattr(aisbench, "check_model", lambda path: None)
    monkeypatch.setattr(bench.ascend, "om_model", lambda ws, model, batch: ModelChoice(om, ExportRecord()))
    monkeypatch.setattr(ascend, "AscendApiSession", lambda path, device_id: holder["session"])

    def use(session: FakeSession) -> Workspace:
        holder["session"] = session
        return Workspace(tmp_path / "ws")

    return use


@pytest.mark.parametrize("backend", ["onnxruntime", "ascend"])
def test_ctrl_c_keeps_the_finished_rows(backend, request):
    use = request.getfixturevalue("fake_ascend" if backend == "ascend" else "fake_host")
    ws = use(FakeSession(interrupt_at=4))
    try:
        result = bench.run(ws, bench.BenchOptions(backend=backend, batch_sizes=(1, 2, 3, 4, 5, 6), loop=2, warmup=0))
    except KeyboardInterrupt:  # caught here: escaping, it would stop the whole pytest run
        pytest.fail("Ctrl-C after three batch sizes lost their rows")
    assert result.interrupted is True
    assert [row.batch_size for row in result.rows] == [1, 2, 3]
    assert result.skipped == ["batch 4, 5, 6: not measured (interrupted)"]
    logged = json.loads((ws.results_dir / "bench.json").read_text())
    assert logged[-1]["interrupted"] is True and [r["batch_size"] for r in logged[-1]["rows"]] == [1, 2, 3]
    use(FakeSession(interrupt_at=1))  # with no row finished Ctrl-C goes on to the CLI; nothing logged
    with pytest.raises(KeyboardInterrupt):
        bench.run(ws, bench.BenchOptions(backend=backend, batch_sizes=(1, 2), loop=2, warmup=0))
    assert len(json.loads((ws.results_dir / "bench.json").read_text())) == len(logged)


def test_warmup_counts_against_max_seconds(monkeypatch):
    clock = SimpleNamespace(now=0.0)

    def tick():  # each run takes 10 s on a fake clock
        clock.now += 10

    monkeypatch.setattr(bench.common, "time", SimpleNamespace(perf_counter=lambda: clock.now,
                                                               strftime=time.strftime))
    session = FakeSession(on_run=tick)
    row = bench.common.time_batch(session, 1, loop=10, warmup=10, max_seconds=25)
    # warm-ups start at 0, 10 and 20 s; the budget is spent by 30 s, so one timed run follows
    assert len(session.runs) == 4 and row.loops == 1


def test_zero_budget_still_times_one_run():
    session = FakeSession()
    row = bench.common.time_batch(session, 2, loop=5, warmup=5, max_seconds=0)
    assert session.runs == [2] and row.loops == 1


def test_default_sweep_on_the_cpu_leaves_out_the_large_batches(fake_host):
    ws = fake_host(FakeSession())
    result = bench.run(ws, bench.BenchOptions(backend="onnxruntime", device="cpu", loop=1, warmup=0))
    assert [row.batch_size for row in result.rows] == [1, 4, 8]
    assert len(result.skipped) == 1
    assert "batch 16, 32, 64" in result.skipped[0] and "--batch-sizes 1,4,8,16,32,64" in result.skipped[0]
    assert result.interrupted is False
    result = bench.run(ws, bench.BenchOptions(backend="onnxruntime", device="cuda", loop=1, warmup=0))
    assert [row.batch_size for row in result.rows] == [1, 4, 8, 16, 32, 64] and not result.skipped


HALF_ON_CPU = "--half on the CPU is not supported"


def test_half_on_the_cpu_is_refused_before_loading(tmp_path):
    with pytest.raises(UsageError) as caught:
        open_session(tmp_path / "missing.pth", device="cpu", precision="fp16")
    assert HALF_ON_CPU in caught.value.message and "far slower than fp32" in caught.value.message
    assert caught.value.hint == "drop --half, or use --device cuda"


def test_half_on_the_cpu_exits_2_for_bench_and_infer(tmp_path):
    ws = Workspace(tmp_path / "ws")
    missing = tmp_path / "missing.pth"
    proc = run_cli("-w", ws.root, "bench", "--backend", "torch", "--half", "--model", missing)
    assert_clean_failure(proc, HALF_ON_CPU, "--device cuda", code=2)
    (ws.inputs_dir / "bin_file").mkdir(parents=True)
    (ws.inputs_dir / "bin_file" / "0.bin").write_bytes(b"\0" * 16)
    proc = run_cli("-w", ws.root, "infer", "--backend", "torch", "--half", "--model", missing)
    assert_clean_failure(proc, HALF_ON_CPU, "--device cuda", code=2)
