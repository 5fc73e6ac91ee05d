"""`bench`: every field in the table and JSON, the batch sweep, --stages, and the run log."""
import json

import pytest

from yolact_edge_cli.steps import export, prep
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, run_cli

ROW_FIELDS = {"batch_size", "loops", "throughput", "latency_mean_ms", "latency_p50_ms",
              "latency_p90_ms", "latency_p99_ms"}


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, checkpoint):
    root = tmp_path_factory.mktemp("bench")
    images = copy_sample_images(root / "images")
    ws = Workspace(root / "ws")
    export.run(ws, checkpoint("yolact_edge_mobilenetv2_config"), dynamic_batch=True)
    prep.run(ws, images, DATA / "golden" / "eval_mini" / "instances_mini.json", workers=1)
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
        assert row["loops"] == 3 and row["throughput"] > 0
        assert row["latency_p50_ms"] <= row["latency_p99_ms"]
        assert row["throughput"] == pytest.approx(1000 * row["batch_size"] / row["latency_mean_ms"], rel=0.01)
    log = json.loads((workspace.results_dir / "bench.json").read_text())
    assert log[-1]["rows"] == result["rows"]
    assert {"yedge", "onnxruntime", "torch"} <= set(log[-1]["versions"])


def test_table_output(workspace):
    proc = run_cli("-w", workspace.root, "bench", "--batch-sizes", "1", "--loop", "2", "--warmup", "0")
    assert proc.returncode == 0, proc.stderr
    for header in ("batch", "loops", "img/s", "mean ms", "p50 ms", "p90 ms", "p99 ms"):
        assert header in proc.stdout
    runs = json.loads((workspace.results_dir / "bench.json").read_text())
    assert len(runs) >= 1 and runs[-1]["rows"][0]["loops"] == 2


def test_stages(workspace):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--stages", "--images", "2")
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)["stages_ms"]
    assert set(stages) == {"read", "inference", "heads", "detect", "masks", "json", "host_total"}
    assert all(value > 0 for value in stages.values())


def test_torch_backend_and_static_batch(tmp_path, checkpoint):
    ws = Workspace(tmp_path / "ws")
    export.run(ws, checkpoint("yolact_edge_mobilenetv2_config"), batch_size=2)
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
