"""`yedge compare`: models and runs, per-output errors, detection-level agreement, exit 5."""
import json
import shutil

import numpy as np
import pytest

from .conftest import DATA, assert_clean_failure, run_cli

MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    ws = prepared(tmp_path_factory.mktemp("compare") / "ws")
    # the same outputs stored as float16, as an .om built with --output_type FP16 would give
    fp16 = ws.outputs_dir / "fp16"
    fp16.mkdir()
    for path in (ws.outputs_dir / "onnxruntime").glob("*.bin"):
        np.fromfile(path, np.float32).astype(np.float16).tofile(fp16 / path.name)
    return ws


def test_onnx_model_against_its_run_and_the_checkpoint(workspace):
    proc = run_cli("-w", workspace.root, "--json", "compare", workspace.default_onnx,
                   workspace.outputs_dir / "onnxruntime", "--num-inputs", "2")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["samples"] == 2 and result["layout"] == "fpn"
    assert [o["name"] for o in result["outputs"]] == [f"output{k}" for k in range(6)]
    assert all(o["max_abs"] == 0 and o["cosine"] == pytest.approx(1) for o in result["outputs"])
    assert result["detections"] == {"a": 200, "b": 200, "matched": 200, "mean_box_iou": 1.0,
                                    "mean_mask_iou": 1.0}
    weights = workspace.step("export")["inputs"]["weights"]
    proc = run_cli("-w", workspace.root, "compare", workspace.outputs_dir / "onnxruntime", weights)
    assert proc.returncode == 0, proc.stderr
    assert "mean box IoU" in proc.stdout and "✓" in proc.stdout


def test_fp16_run_is_out_of_tolerance_but_detections_agree(workspace):
    proc = run_cli("-w", workspace.root, "--json", "compare", workspace.outputs_dir / "fp16",
                   workspace.outputs_dir / "onnxruntime", "--atol", "1e-5", "--rtol", "0")
    line = assert_clean_failure(proc, "output(s) differ beyond atol", code=5)
    assert "output0" in line
    result = json.loads(proc.stdout[: proc.stdout.rindex("{\n  \"error\"")])
    assert not result["ok"]
    assert all(o["cosine"] > 0.9999 for o in result["outputs"])
    assert result["detections"]["matched"] >= 0.9 * result["detections"]["b"]
    proc = run_cli("-w", workspace.root, "compare", workspace.outputs_dir / "fp16",
                   workspace.outputs_dir / "onnxruntime")
    assert proc.returncode == 0, proc.stderr  # within the default atol 1e-4 + rtol 1e-3 · max|B|


def test_compare_bad_arguments(workspace, tmp_path):
    proc = run_cli("-w", workspace.root, "compare", tmp_path / "nope", workspace.default_onnx)
    assert_clean_failure(proc, "not a run folder or model file", code=3)
    broken = tmp_path / "broken"
    shutil.copytree(workspace.outputs_dir / "onnxruntime", broken)
    (broken / "1_2.bin").write_bytes(b"short")
    proc = run_cli("-w", workspace.root, "compare", broken, workspace.default_onnx)
    assert_clean_failure(proc, "1_2.bin", "wrong size", code=3)
