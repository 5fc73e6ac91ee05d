"""`yedge doctor`: the environment and the workspace's stale artifacts."""
import json

import pytest

from yolact_edge_cli.steps import convert, export, prep

from .conftest import DATA, copy_sample_images, run_cli
from .test_ascend import fake_env

MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"


def _checks(proc) -> dict:
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_empty_workspace_and_plain_machine(tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "--json", "doctor",
                   env={"PATH": "/usr/bin:/bin", "ASCEND_TOOLKIT_HOME": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr
    checks = _checks(proc)
    for name in ("python", "torch", "onnx", "onnxruntime", "pycocotools"):
        assert checks[name]["status"] == "ok"
    assert checks["npu-smi"]["status"] == "warn" and "--soc-version" in checks["npu-smi"]["fix"]
    assert checks["steps done"]["status"] == "warn" and "yedge export" in checks["steps done"]["fix"]
    text = run_cli("-w", tmp_path / "ws", "doctor", env={"PATH": "/usr/bin:/bin"})
    assert "✓" in text.stdout and "!" in text.stdout


@pytest.mark.ascend
def test_ascend_host_and_stale_artifacts(tmp_path, checkpoint, prepared, monkeypatch):
    ws = prepared(tmp_path / "ws", "yolact_edge_mobilenetv2_config")  # its infer ran on onnxruntime
    for key, value in fake_env().items():
        monkeypatch.setenv(key, value)
    convert.run(ws)
    proc = run_cli("-w", ws.root, "--json", "doctor", env=fake_env())
    assert proc.returncode == 0, proc.stdout
    checks = _checks(proc)
    assert checks["npu-smi"]["detail"] == "2 chip(s): Ascend310P3"
    assert checks["ais_bench"]["status"] == "ok" and checks["atc"]["status"] == "ok"
    assert checks["models/yolact_edge_bs1.om"]["status"] == "ok"
    # a new export (other weights) makes the .om and the outputs stale
    export.run(ws, checkpoint("yolact_edge_mobilenetv2_config", seed=1))
    proc = run_cli("-w", ws.root, "--json", "doctor", env=fake_env())
    assert proc.returncode == 3
    checks = _checks(proc)
    assert checks["models/yolact_edge_bs1.om"]["detail"] == "built from an older ONNX"
    assert checks["outputs/onnxruntime"]["status"] == "fail"
    assert checks["outputs/onnxruntime"]["fix"] == "`yedge infer --backend onnxruntime --run onnxruntime --overwrite`"


def test_inputs_of_another_dtype(tmp_path, exported):
    ws = exported(tmp_path / "ws", "yolact_edge_mobilenetv2_config")
    prep.run(ws, copy_sample_images(tmp_path / "images"), MINI, prep.PrepOptions(workers=1, dtype="uint8"))
    proc = run_cli("-w", ws.root, "--json", "doctor", env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode == 3
    check = _checks(proc)["inputs"]
    assert check["detail"] == "prepared as uint8, the model takes float32"
    assert "yedge prep --dtype float32" in check["fix"]
