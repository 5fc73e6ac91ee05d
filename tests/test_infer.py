"""`infer`: ais_bench's grouping, padding and naming; backends agree; resumable."""
import json
from pathlib import Path

import numpy as np
import pytest

from yolact_edge_cli.data import binio
from yolact_edge_cli.errors import InputError
from yolact_edge_cli.records import PrepRecord
from yolact_edge_cli.steps import export, infer
from yolact_edge_cli.workspace import Workspace

from .conftest import assert_clean_failure, run_cli

MBV2 = "yolact_edge_mobilenetv2_config"


def test_natural_sort_grouping_padding_and_names(tmp_path):
    for name in ("10.bin", "2.bin", "1.bin", "0.bin", "3.bin", "a.b.bin", "notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files = binio.list_input_files(tmp_path)
    assert [f.name for f in files] == ["0.bin", "1.bin", "2.bin", "3.bin", "10.bin", "a.b.bin"]
    batches = binio.group(files, 4)
    assert [len(b.files) for b in batches] == [4, 2]
    assert [f.name for f in batches[1].padded] == ["10.bin", "a.b.bin", "10.bin", "10.bin"]
    assert binio.output_path(tmp_path, files[-1], 3).name == "a_3.bin"
    assert [len(b.files) for b in binio.group(files, 1)] == [1] * 6


def _workspace(tmp_path, exported, **export_options) -> Workspace:
    ws = exported(tmp_path / "ws", MBV2, **export_options)
    folder = ws.inputs_dir / "bin_file"
    folder.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(4):
        rng.standard_normal((1, 3, 550, 550)).astype(np.float32).tofile(folder / f"{i}.bin")
    return ws


def _outputs(run_dir: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(run_dir.glob("*.bin"))}


@pytest.fixture(scope="module")
def batch1(tmp_path_factory, exported):
    tmp = tmp_path_factory.mktemp("batch1")
    ws = _workspace(tmp, exported)
    result = infer.run(ws)
    return ws, result


def test_batch1_writes_six_outputs_per_sample_and_the_summary(batch1):
    ws, result = batch1
    assert result.backend == "onnxruntime" and result.layout == "fpn" and result.samples == 4
    run_dir = ws.outputs_dir / "onnxruntime"
    names = sorted(p.name for p in run_dir.iterdir())
    assert names == sorted(f"{i}_{k}.bin" for i in range(4) for k in range(6))
    assert (run_dir / "0_0.bin").stat().st_size == 256 * 69 * 69 * 4
    assert (run_dir / "0_5.bin").stat().st_size == 138 * 138 * 32 * 4
    summary = json.loads((ws.outputs_dir / "onnxruntime_summary.json").read_text())
    assert list(summary) == ["filesinfo", "args", "NPU_compute_time", "H2D_latency", "D2H_latency",
                             "npu_compute_time_list", "throughput", "pid"]
    assert summary["NPU_compute_time"]["count"] == 4 == len(summary["npu_compute_time_list"])
    assert summary["filesinfo"]["3"]["outfiles"][5].endswith("3_5.bin")
    assert set(summary["NPU_compute_time"]) == {"min", "max", "mean", "median", "percentile(99%)", "count"}


def test_batch3_pads_the_last_batch_and_drops_padding_outputs(tmp_path, exported, batch1):
    ws = _workspace(tmp_path, exported, batch_size=3)
    result = infer.run(ws, infer.InferOptions(run_name="bs3"))
    assert result.batch_size == 3
    summary = json.loads((ws.outputs_dir / "bs3_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 2  # two batches: 3 files, then 1 + 2 padding
    ours = _outputs(ws.outputs_dir / "bs3")
    reference = _outputs(batch1[0].outputs_dir / "onnxruntime")
    assert ours.keys() == reference.keys()
    for name in ours:
        a, b = (np.frombuffer(x, np.float32) for x in (ours[name], reference[name]))
        assert np.abs(a - b).max() <= 1e-4, name


def test_dynamic_batch_model_with_batch_size(tmp_path, exported, batch1):
    ws = _workspace(tmp_path, exported, dynamic_batch=True)
    result = infer.run(ws, infer.InferOptions(batch_size=3, run_name="dyn"))
    assert result.batch_size == 3
    ours, reference = _outputs(ws.outputs_dir / "dyn"), _outputs(batch1[0].outputs_dir / "onnxruntime")
    assert ours.keys() == reference.keys()
    assert max(np.abs(np.frombuffer(ours[n], np.float32) - np.frombuffer(reference[n], np.float32)).max()
               for n in ours) <= 1e-4


def test_torch_backend_agrees_with_onnxruntime(batch1):
    ws, _ = batch1
    result = infer.run(ws, infer.InferOptions(backend="torch", run_name="torch", batch_size=2))
    assert result.backend == "torch" and result.batch_size == 2
    ours, reference = _outputs(ws.outputs_dir / "torch"), _outputs(ws.outputs_dir / "onnxruntime")
    assert ours.keys() == reference.keys()
    for name in ours:
        assert np.abs(np.frombuffer(ours[name], np.float32) - np.frombuffer(reference[name], np.float32)).max() <= 1e-4


def test_rerun_resumes(batch1):
    ws, _ = batch1
    run_dir = ws.outputs_dir / "onnxruntime"
    before = _outputs(run_dir)
    (run_dir / "2_3.bin").unlink()
    (run_dir / "1_5.bin").write_bytes(b"cut")
    result = infer.run(ws)
    assert result.computed == 2 and result.skipped_existing == 2
    assert _outputs(run_dir) == before


def test_a_rerun_with_nothing_to_compute_keeps_the_measured_summary(batch1):
    ws, _ = batch1
    summary = ws.outputs_dir / "onnxruntime_summary.json"
    before = summary.read_bytes()
    result = infer.run(ws)
    assert result.computed == 0 and result.skipped_existing == 4
    assert summary.read_bytes() == before and json.loads(before)["NPU_compute_time"]["count"] > 0
    assert result.throughput == round(json.loads(before)["throughput"], 2)


def test_static_batch_mismatch_and_wrong_input_size(tmp_path, exported):
    ws = _workspace(tmp_path, exported)
    with pytest.raises(Exception, match="static batch of 1"):
        infer.run(ws, infer.InferOptions(batch_size=4))
    (ws.inputs_dir / "bin_file" / "1.bin").write_bytes(np.zeros(10, np.float32).tobytes())
    proc = run_cli("-w", ws.root, "infer")
    assert_clean_failure(proc, "1.bin", "the model takes 3630000", code=3)


def test_model_input_dtype_must_match_prepared_dtype(tmp_path, exported):
    ws = _workspace(tmp_path, exported)
    ws.save(PrepRecord(dtype="uint8"))
    with pytest.raises(InputError, match="takes float32 input but the inputs were prepared as uint8"):
        infer.run(ws)


def test_uint8_model_normalises_in_graph(tmp_path, checkpoint):
    from yolact_edge_cli.data.preprocess import preprocess_uint8, read_image

    from .conftest import DATA

    ws = Workspace(tmp_path / "ws")
    result = export.run(ws, checkpoint(MBV2), export.ExportOptions(input_dtype="uint8"))
    assert result.inputs[0]["dtype"] == "uint8"
    folder = ws.inputs_dir / "bin_file"
    folder.mkdir(parents=True)
    preprocess_uint8(read_image(DATA / "coffee.png"))[None].tofile(folder / "0.bin")
    ws.save(PrepRecord(dtype="uint8"))
    assert infer.run(ws).computed == 1


def test_infer_in_an_empty_workspace(tmp_path):
    proc = run_cli("-w", tmp_path / "empty", "infer")
    assert_clean_failure(proc, "no exported model", "yedge export", code=3)


def test_compile_is_for_the_torch_backend_on_cuda(batch1):
    ws, _ = batch1
    for backend in ("torch", "onnxruntime"):
        proc = run_cli("-w", ws.root, "infer", "--backend", backend, "--compile", "--run", "compiled")
        assert_clean_failure(proc, "--compile applies to the torch backend on CUDA", code=2)
    assert not (ws.outputs_dir / "compiled").exists()


def test_onnxruntime_providers_on_cuda_prefer_tensorrt_then_cuda(tmp_path):
    from yolact_edge_cli.backends.onnxruntime import execution_providers
    from yolact_edge_cli.errors import EnvironmentProblem

    model = tmp_path / "models" / "yolact_edge.onnx"
    everything = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert execution_providers("cpu", everything, model) == ["CPUExecutionProvider"]
    trt, *rest = execution_providers("cuda", everything, model)
    assert trt[0] == "TensorrtExecutionProvider" and rest == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert trt[1]["trt_engine_cache_path"] == str(tmp_path / "models" / ".yolact_edge.trt")
    assert "trt_fp16_enable" not in trt[1]  # the model's float32, as on every other backend
    assert execution_providers("cuda", everything[1:], model) == everything[1:]
    with pytest.raises(EnvironmentProblem, match="no CUDA provider"):
        execution_providers("cuda", ["CPUExecutionProvider"], model)


def test_a_run_name_is_a_folder_of_the_workspace(batch1, tmp_path):
    ws, _ = batch1
    for name in ("../escape", str(tmp_path / "elsewhere"), ".."):
        proc = run_cli("-w", ws.root, "infer", "--run", name)
        assert_clean_failure(proc, "is not a plain folder name", code=2)
    assert not (ws.root / "escape").exists() and not (tmp_path / "elsewhere").exists()
