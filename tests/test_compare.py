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
    result = json.loads(proc.stdout)  # one document: the result with the error's keys
    assert not result["ok"] and result["exit_code"] == 5 and line == f"error: {result['error']}"
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


def test_a_model_against_itself_matches_every_detection_eval_keeps(workspace, tmp_path):
    """An 8×8 image gives detections whose boxes round to zero area: eval skips them, and so
    does compare (they have no IoU to match on)."""
    import cv2

    from yolact_edge_cli.steps import prep

    from .conftest import clone_workspace

    ws = clone_workspace(workspace, tmp_path / "ws")
    folder = tmp_path / "tiny"
    folder.mkdir()
    cv2.imwrite(str(folder / "tiny.png"), np.full((8, 8, 3), 120, np.uint8))
    annotations = tmp_path / "tiny.json"
    annotations.write_text(json.dumps({"images": [{"id": 1, "file_name": "tiny.png", "width": 8, "height": 8}],
                                       "annotations": [], "categories": [{"id": 1, "name": "person"}]}))
    prep.run(ws, folder, annotations, prep.PrepOptions(workers=1, all_images=True))
    proc = run_cli("-w", ws.root, "--json", "compare", ws.default_onnx, ws.default_onnx, "--num-inputs", "1")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)["detections"]
    assert 0 < found["a"] < 100 and found["a"] == found["b"] == found["matched"]


def test_a_model_taking_other_inputs_than_prepared_is_said_so(workspace, tmp_path):
    import onnx
    from onnx import TensorProto, helper

    names = ("boxes", "scores", "classes", "coefficients", "count", "proto")
    nodes = [helper.make_node("Constant", [], [n], value=helper.make_tensor(n, TensorProto.FLOAT, [1], [0.0]))
             for n in names]
    graph = helper.make_graph(nodes, "uint8_in",
                              [helper.make_tensor_value_info("image", TensorProto.UINT8, [1, 3, 550, 550])],
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, [1]) for n in names])
    model = tmp_path / "uint8.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 11)]), str(model))
    proc = run_cli("-w", workspace.root, "compare", model, workspace.default_onnx, "--num-inputs", "1")
    assert_clean_failure(proc, "the model takes uint8 input but the inputs were prepared as float32", code=3)
