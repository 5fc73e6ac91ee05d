"""--precision on infer, eval, predict and bench, the OpenVINO backend, and `bench --backends
--precisions`' one table: each precision runs where precision.py's table says it does (checked
against float32 on the sample photos), and a pair a backend or this CPU lacks is one clear
usage error, before any model is loaded."""
from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import numpy as np
import pytest

from yolact_edge_cli import precision
from yolact_edge_cli.errors import UsageError

from .conftest import DATA, assert_clean_failure, run_cli

MBV2 = "yolact_edge_mobilenetv2_config"
needs_openvino = pytest.mark.skipif(importlib.util.find_spec("openvino") is None,
                                    reason="the openvino extra is not installed")


def test_each_backend_offers_what_the_table_says():
    assert precision.offered("onnxruntime", "cpu") == ("fp32", "int8")
    assert precision.offered("openvino", "cpu") == ("fp32", "bf16", "fp16", "int8")
    assert precision.offered("torch", "cuda") == ("fp32", "fp16")
    assert "int8" in precision.offered("ascend", "0,1")  # any NPU ids
    with pytest.raises(UsageError) as caught:
        precision.check("onnxruntime", "cpu", "bf16")
    assert caught.value.message == "onnxruntime on cpu runs fp32, int8, not bf16"
    assert caught.value.hint == "use --backend openvino or torch"
    with pytest.raises(UsageError, match="--half on the CPU is not supported"):
        precision.check("torch", "cpu", "fp16")


def test_a_precision_this_cpu_lacks_is_refused_naming_what_it_has(monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx_vnni", "sse4_2"}))
    assert precision.cpu_isa() == ["AVX-VNNI", "AVX2"]
    with pytest.raises(UsageError) as caught:
        precision.check("openvino", "cpu", "bf16")
    assert caught.value.message == ("--precision bf16 needs a CPU with AMX-BF16 or AVX-512 BF16; this one has "
                                    "AVX-VNNI, AVX2 (yedge doctor lists them)")
    precision.check("openvino", "cpu", "int8")  # int8 runs anywhere (VNNI only makes it faster)
    assert not precision.runs_here("torch", "cpu", "bf16") and precision.runs_here("torch", "cpu", "fp32")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    """MobileNetV2, head layout, prepared and inferred on the two sample photos, then quantized."""
    ws = prepared(tmp_path_factory.mktemp("precision") / "ws", MBV2, layout="head")
    proc = run_cli("-w", ws.root, "quantize", "--min-cosine", "0.99")
    assert proc.returncode == 0, proc.stderr
    return ws


def _outputs(run_dir, count=4):
    return [np.fromfile(run_dir / f"0_{k}.bin", dtype=np.float32) for k in range(count)]


def _cosine(a, b):
    a, b = a.astype(np.float64), b.astype(np.float64)
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


@pytest.mark.parametrize("args, message", [
    (["infer", "--backend", "onnxruntime", "--precision", "bf16"], "onnxruntime on cpu runs fp32, int8, not bf16"),
    (["infer", "--precision", "fp16", "--half"], "onnxruntime on cpu runs fp32, int8, not fp16"),  # they agree
    (["infer", "--precision", "int8", "--half"], "--half is --precision fp16, not int8"),
    (["eval", "--precision", "int8"], "--precision is the model's"),
    (["predict", "x.jpg", "--backend", "torch", "--precision", "int8"], "torch on cpu runs fp32, bf16, not int8"),
])
def test_refusals_are_one_line_and_change_nothing(workspace, args, message):
    before = workspace.manifest_path.read_text()
    proc = run_cli("-w", workspace.root, *args)
    assert_clean_failure(proc, message, code=2)
    assert workspace.manifest_path.read_text() == before


def test_int8_needs_a_quantized_model(workspace, tmp_path):
    float_model = workspace.root / "models" / "yolact_edge.onnx"
    proc = run_cli("-w", workspace.root, "infer", "--precision", "int8", "--model", float_model)
    assert_clean_failure(proc, "has no QuantizeLinear/DequantizeLinear pairs", code=2)
    bare = tmp_path / "bare"
    proc = run_cli("-w", bare, "infer", "--backend", "onnxruntime", "--precision", "int8")
    assert proc.returncode != 0 and "yedge" in proc.stderr


def test_onnxruntime_int8_runs_the_quantized_model(workspace):
    proc = run_cli("-w", workspace.root, "--json", "infer", "--precision", "int8", "--run", "ort_int8")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["precision"] == "int8" and result["model"].endswith("yolact_edge_int8.onnx")
    entry = workspace.step("infer")
    assert entry["options"]["precision"] == "int8"
    fp32, int8 = _outputs(workspace.outputs_dir / "onnxruntime"), _outputs(workspace.outputs_dir / "ort_int8")
    assert all(0.99 <= _cosine(a, b) < 1.0 for a, b in zip(fp32, int8))  # close, and not the float model


@pytest.mark.slow
@needs_openvino
def test_openvino_runs_fp32_and_int8_through_infer_eval_and_predict(workspace, tmp_path):
    for name, extra in (("ov_fp32", []), ("ov_int8", ["--precision", "int8"])):
        proc = run_cli("-w", workspace.root, "infer", "--backend", "openvino", "--run", name, *extra)
        assert proc.returncode == 0, proc.stderr
    reference = _outputs(workspace.outputs_dir / "onnxruntime")
    assert all(_cosine(a, b) > 0.99999 for a, b in zip(reference, _outputs(workspace.outputs_dir / "ov_fp32")))
    assert all(_cosine(a, b) > 0.99 for a, b in zip(reference, _outputs(workspace.outputs_dir / "ov_int8")))
    proc = run_cli("-w", workspace.root, "--json", "eval", "--stream", "--backend", "openvino", "--precision",
                   "int8", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 2
    proc = run_cli("-w", workspace.root, "--json", "predict", DATA / "astronaut.png", "--backend", "openvino",
                   "--precision", "int8", "-o", tmp_path / "pred")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 1 and json.loads(proc.stdout)["precision"] == "int8"


@needs_openvino
@pytest.mark.skipif(not precision.runs_here("openvino", "cpu", "bf16"), reason="this CPU has no bf16")
def test_openvino_bf16_agrees_with_fp32(workspace):
    proc = run_cli("-w", workspace.root, "infer", "--backend", "openvino", "--precision", "bf16", "--run", "ov_bf16")
    assert proc.returncode == 0, proc.stderr
    pairs = zip(_outputs(workspace.outputs_dir / "onnxruntime"), _outputs(workspace.outputs_dir / "ov_bf16"))
    assert all(0.999 < _cosine(a, b) < 1.0 for a, b in pairs)  # reduced, yet close


@pytest.mark.slow
@needs_openvino
def test_one_table_of_backends_and_precisions(workspace):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--backends", "onnxruntime,openvino",
                   "--precisions", "fp32,bf16,int8", "--loop", "1", "--warmup", "0", "-n", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["mode"] == "precisions" and result["check_images"] == 2
    rows = {(r["backend"], r["precision"]): r for r in result["precisions"]}
    assert list(rows) == [(b, p) for b in ("onnxruntime", "openvino") for p in ("fp32", "bf16", "int8")]
    refused = rows["onnxruntime", "bf16"]
    assert refused["status"] == "refused" and "not bf16" in refused["reason"] and not refused["rows"]
    for key in (("onnxruntime", "fp32"), ("onnxruntime", "int8"), ("openvino", "fp32"), ("openvino", "int8")):
        row = rows[key]
        assert row["status"] == "ok" and row["rows"][0]["throughput"] > 0 and row["size_mb"] > 0
        agreement = row["agreement"]
        assert set(agreement["outputs"]) == {"loc", "conf", "mask", "proto"}
        # the workspace's images are annotated: each row has the mAP of both models
        assert agreement["map_float32"] is not None and agreement["map_other"] is not None
    assert rows["onnxruntime", "fp32"]["agreement"]["worst_cosine"] == pytest.approx(1.0, abs=1e-9)
    assert rows["onnxruntime", "fp32"]["agreement"]["map_drop"] == 0
    assert rows["onnxruntime", "int8"]["size_mb"] < rows["onnxruntime", "fp32"]["size_mb"]  # INT8 weights
    assert 0.99 <= rows["openvino", "int8"]["agreement"]["worst_cosine"] < 1.0
    # a table in which nothing ran is shown, then fails (exit 2): a script sees that nothing was measured
    table = run_cli("-w", workspace.root, "bench", "--backends", "onnxruntime", "--precisions", "bf16", "--loop", "1")
    assert table.returncode == 2 and "refused" in table.stdout and "not bf16" in table.stderr
    assert "no pair of --backends × --precisions runs here" in table.stderr
    assert "use --backends openvino" in table.stderr  # in the table's own terms
    table = run_cli("-w", workspace.root, "--json", "bench", "--backends", "onnxruntime", "--precisions", "bf16",
                    "--loop", "1")
    assert table.returncode == 2 and json.loads(table.stdout)["exit_code"] == 2


def test_bench_table_refuses_what_it_cannot_combine(workspace):
    assert_clean_failure(run_cli("-w", workspace.root, "bench", "--backends", "onnxruntime", "--stages"),
                         "--backends/--precisions make their own table", code=2)
    assert_clean_failure(run_cli("-w", workspace.root, "bench", "--precisions", "fp8"),
                         "unknown precision 'fp8'", code=2)


def test_onnxruntime_on_cuda_runs_fp16_and_int8_through_tensorrt_only(tmp_path):
    from yolact_edge_cli.backends.onnxruntime import execution_providers
    from yolact_edge_cli.errors import EnvironmentProblem

    model = tmp_path / "m.onnx"
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    trt = execution_providers("cuda", everything, model, "fp16")[0]
    assert trt[1]["trt_fp16_enable"] is True and trt[1]["trt_engine_cache_path"] == str(tmp_path / ".m.fp16.trt")
    assert execution_providers("cuda", everything, model, "int8")[0][1]["trt_int8_enable"] is True
    with pytest.raises(EnvironmentProblem, match="runs int8 on CUDA through TensorRT"):
        execution_providers("cuda", everything[1:], model, "int8")


def test_doctor_lists_the_instructions_and_each_backend_s_precisions(tmp_path, monkeypatch):
    monkeypatch.setattr(precision, "cpu_flags", lambda: frozenset({"avx2", "avx512_vnni"}))
    proc = run_cli("-w", tmp_path / "ws", "--json", "doctor")
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"] if c["area"] == "precision"}
    assert checks["cpu"]["detail"] == "AVX-512 VNNI, AVX2" and checks["cpu"]["status"] == "ok"
    assert checks["onnxruntime"]["detail"] == "cpu: fp32, int8"
    assert checks["openvino"]["detail"] == ("cpu: fp32, int8 (not bf16, fp16: this CPU lacks the instructions)")
    assert checks["torch"]["detail"] == "cpu: fp32 (not bf16: this CPU lacks the instructions)"


@needs_openvino
def test_compare_runs_each_side_in_its_own_backend_and_precision(workspace):
    model = workspace.root / "models" / "yolact_edge.onnx"
    proc = run_cli("-w", workspace.root, "--json", "compare", model, model, "--a-backend", "openvino",
                   "--num-inputs", "2", "--atol", "1e-3")
    assert proc.returncode == 0, proc.stderr
    cosines = [o["cosine"] for o in json.loads(proc.stdout)["outputs"]]
    assert all(0.99999 < c <= 1.0 for c in cosines)
    proc = run_cli("-w", workspace.root, "compare", workspace.int8_onnx, model, "--a-precision", "int8",
                   "--a-backend", "openvino", "--num-inputs", "1")
    assert proc.returncode == 5 and "differ beyond" in proc.stderr  # int8 is not within fp32's tolerance
    assert_clean_failure(run_cli("-w", workspace.root, "compare", workspace.outputs_dir / "onnxruntime", model,
                                 "--a-precision", "int8"), "is a run folder", code=2)


def test_the_map_gate_fails_over_its_drop():
    from yolact_edge_cli.errors import AccuracyError
    from yolact_edge_cli.metrics.agreement import AgreementSummary
    from yolact_edge_cli.steps.quantize import _gate

    summary = AgreementSummary(outputs={"conf": {"cosine": 0.9995, "max_abs_diff": 0.1}},
                               map_float32=30.0, map_other=28.5)
    _gate(summary, 0.999, 2.0, Path("int8.onnx"))  # a drop of 1.5 within 2
    with pytest.raises(AccuracyError, match="1.50 points below float32's 30.00, over --max-map-drop 1.0"):
        _gate(summary, 0.999, 1.0, Path("int8.onnx"))
    with pytest.raises(AccuracyError, match="below --min-cosine 0.9999"):
        _gate(summary, 0.9999, None, Path("int8.onnx"))


def test_no_result_is_labelled_with_a_precision_it_was_not_computed_in(workspace, tmp_path):
    """A new user's trial: resuming a run folder in another precision, an INT8 file run as
    "fp32", a float file compared as "int8"."""
    proc = run_cli("-w", workspace.root, "infer", "--precision", "int8", "--run", "mixed")
    assert proc.returncode == 0, proc.stderr
    assert_clean_failure(run_cli("-w", workspace.root, "infer", "--run", "mixed"),
                         "another precision (int8)", "--overwrite", code=3)
    if precision.runs_here("openvino", "cpu", "bf16") and importlib.util.find_spec("openvino"):
        # the same file in another precision: as much a mix as another model
        proc = run_cli("-w", workspace.root, "infer", "--backend", "openvino", "--precision", "bf16", "--run", "ov")
        assert proc.returncode == 0, proc.stderr
        assert_clean_failure(run_cli("-w", workspace.root, "infer", "--backend", "openvino", "--run", "ov"),
                             "holds outputs of another precision (bf16)", code=3)
    proc = run_cli("-w", workspace.root, "--json", "infer", "--model", workspace.int8_onnx, "--run", "file")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["precision"] == "int8"  # the QDQ file decides
    proc = run_cli("-w", workspace.root, "--json", "predict", DATA / "coffee.png", "--model", workspace.int8_onnx,
                   "--precision", "fp32", "-o", tmp_path / "p")
    assert proc.returncode == 0 and json.loads(proc.stdout)["precision"] == "int8", proc.stderr
    model = workspace.root / "models" / "yolact_edge.onnx"
    line = assert_clean_failure(run_cli("-w", workspace.root, "compare", model, model, "--a-precision", "int8"),
                                "has no QuantizeLinear/DequantizeLinear pairs", code=2)
    assert "--a-precision int8 runs a quantized model" in line  # the side's own option
    assert "compare the INT8 .onnx it writes as A" in line  # compare has no --model
    line = assert_clean_failure(run_cli("-w", workspace.root, "compare", model, model, "--a-precision", "bf16"),
                                "onnxruntime on cpu runs fp32, int8, not bf16", "use --a-backend openvino", code=2)
    assert "torch" not in line  # torch does not run an .onnx
    assert_clean_failure(run_cli("-w", workspace.root, "compare", model, model, "--b-backend", "torch"),
                         "--b-backend torch does not run yolact_edge.onnx", "use --b-backend onnxruntime or openvino",
                         code=2)


def test_a_backend_on_a_device_it_does_not_run_on_is_refused_before_any_work(workspace, tmp_path):
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--backend", "openvino", "--device",
                   "cuda", "-o", tmp_path / "p")
    assert_clean_failure(proc, "openvino does not run on cuda", "use --device cpu", code=2)
    assert not (tmp_path / "p").exists() and "━" not in proc.stderr  # refused before the progress bar
    assert_clean_failure(run_cli("-w", workspace.root, "bench", "--backends", "onnxruntime", "--backend", "torch"),
                         "--backends/--precisions make their own table", code=2)
