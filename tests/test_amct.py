"""Ascend INT8: `yedge quantize` → `yedge convert --precision int8` (CANN's AMCT, then atc on its
deploy model) → an .om of precision int8 → infer and eval on it, against the AMCT, atc and
ais_bench emulators of tests/fakes; and the AMCT emulator as strict as AMCT documents it."""
from __future__ import annotations

import json
import sys

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from yolact_edge_cli.ascend import amct
from yolact_edge_cli.errors import EnvironmentProblem

from .conftest import FAKES, assert_clean_failure, fake_env, run_cli

pytestmark = pytest.mark.ascend

MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    ws = prepared(tmp_path_factory.mktemp("amct") / "ws", MBV2, layout="head")
    proc = run_cli("-w", ws.root, "quantize", "--min-cosine", "0.99")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("-w", ws.root, "infer", "--precision", "int8", "--run", "ort_int8")
    assert proc.returncode == 0, proc.stderr
    return ws


@pytest.fixture
def emulator(monkeypatch):
    monkeypatch.syspath_prepend(str(FAKES / "python"))
    sys.modules.pop("amct_onnx", None)
    import amct_onnx

    return amct_onnx


def test_quantize_to_om_to_infer_to_eval(workspace):
    env = fake_env()
    proc = run_cli("-w", workspace.root, "--json", "convert", "--precision", "int8", env=env)
    assert proc.returncode == 0, proc.stderr
    model = json.loads(proc.stdout)["models"][0]
    assert model["quantized"] and model["om"] == "models/yolact_edge_int8_bs1.om"
    assert model["onnx"].endswith("yolact_edge_int8.onnx")
    # atc read AMCT's deploy model, which AMCT wrote beside its fake-quant model
    assert "amct/yolact_edge_int8_deploy_model.onnx" in " ".join(json.loads(proc.stdout)["argv"][0])
    assert sorted(p.name for p in workspace.amct_dir.iterdir()) == [
        "yolact_edge_int8_deploy_model.onnx", "yolact_edge_int8_fake_quant_model.onnx"]
    deploy = onnx.load(str(workspace.amct_dir / "yolact_edge_int8_deploy_model.onnx"))
    assert {"AscendQuant", "AscendWeightQuant"} <= {n.op_type for n in deploy.graph.node}
    assert "[INFO]" in (workspace.logs_dir / "amct.log").read_text()

    proc = run_cli("-w", workspace.root, "--json", "infer", "--backend", "ascend", "--precision", "int8",
                   "--run", "npu_int8", env=env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["precision"] == "int8" and result["model"].endswith("yolact_edge_int8_bs1.om")
    for k in range(4):  # the .om computes what the INT8 ONNX computes in onnxruntime
        npu = np.fromfile(workspace.outputs_dir / "npu_int8" / f"0_{k}.bin", dtype=np.float32)
        ort = np.fromfile(workspace.outputs_dir / "ort_int8" / f"0_{k}.bin", dtype=np.float32)
        assert npu.shape == ort.shape and np.abs(npu - ort).max() <= 1e-3 * max(1.0, np.abs(ort).max())
    proc = run_cli("-w", workspace.root, "--json", "eval", "--outputs", workspace.outputs_dir / "npu_int8",
                   "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 2

    # the fp16 .om (no --precision) is another file; asking for one not converted says how
    proc = run_cli("-w", workspace.root, "infer", "--backend", "ascend", "--precision", "fp32", env=env)
    assert_clean_failure(proc, "no converted .om in fp32", "--precision-mode force_fp32", code=3)


def test_convert_refuses_int8_of_a_float_model_and_says_where_amct_is_missing(workspace, monkeypatch, tmp_path):
    proc = run_cli("-w", workspace.root, "convert", "--precision", "int8", "--model",
                   workspace.root / "models" / "yolact_edge.onnx", env=fake_env())
    assert_clean_failure(proc, "has no QuantizeLinear/DequantizeLinear pairs", code=2)
    monkeypatch.setitem(sys.modules, "amct_onnx", None)  # as where AMCT is not installed
    with pytest.raises(EnvironmentProblem, match="needs CANN's AMCT"):
        amct.deploy_model(workspace.int8_onnx, tmp_path / "amct", tmp_path / "amct.log")


def test_paired_form_computes_what_the_int8_model_computes(workspace, tmp_path, emulator):
    import onnxruntime as ort

    paired = tmp_path / "paired.onnx"
    amct.paired_form(workspace.int8_onnx, paired)
    data = np.fromfile(sorted(workspace.bin_dir.glob("*.bin"))[0], dtype=np.float32).reshape(1, 3, 550, 550)
    want, got = (ort.InferenceSession(str(p)).run(None, {"image": data}) for p in (workspace.int8_onnx, paired))
    assert all(np.array_equal(a, b) for a, b in zip(want, got))
    with pytest.raises(RuntimeError, match="is not paired with a QuantizeLinear"):
        emulator.convert_qat_model(str(workspace.int8_onnx), str(tmp_path / "raw"))  # lone weight DQs
    emulator.convert_qat_model(str(paired), str(tmp_path / "ok"))
    assert (tmp_path / "ok_deploy_model.onnx").is_file() and (tmp_path / "ok_fake_quant_model.onnx").is_file()


def _tiny(tmp_path, *, per_channel_activation=False, unequal=False, input_type=TensorProto.FLOAT):
    """x → Q/DQ → Conv(w: Q/DQ per channel): the smallest QAT model, broken as asked."""
    w = np.ones((2, 2, 1, 1), np.float32)
    shape = (2,) if per_channel_activation else ()
    inits = [numpy_helper.from_array(w, "w"), numpy_helper.from_array(np.array([0.5, 0.25], np.float32), "ws"),
             numpy_helper.from_array(np.zeros(2, np.int8), "wz"),
             numpy_helper.from_array(np.full(shape, 0.1, np.float32), "s"),
             numpy_helper.from_array(np.zeros(shape, np.uint8), "z"),
             numpy_helper.from_array(np.full(shape, 0.2, np.float32), "s2")]
    nodes = [helper.make_node("QuantizeLinear", ["x", "s", "z"], ["xq"], axis=1),
             helper.make_node("DequantizeLinear", ["xq", "s2" if unequal else "s", "z"], ["xd"], axis=1),
             helper.make_node("QuantizeLinear", ["w", "ws", "wz"], ["wq"], axis=0),
             helper.make_node("DequantizeLinear", ["wq", "ws", "wz"], ["wd"], axis=0),
             helper.make_node("Conv", ["xd", "wd"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", input_type, [1, 2, 4, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 2, 4, 4])], inits)
    path = tmp_path / "tiny.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), str(path))
    return path


def test_the_amct_emulator_is_as_strict_as_amct(tmp_path, emulator):
    emulator.convert_qat_model(str(_tiny(tmp_path)), str(tmp_path / "good"))
    assert (tmp_path / "good_deploy_model.onnx").is_file()
    for broken, message in (({"unequal": True}, "different quantization factors"),
                            ({"per_channel_activation": True}, "only Conv weights may be per-channel"),
                            ({"input_type": TensorProto.UINT8}, "is not float32")):
        with pytest.raises(RuntimeError, match=message):
            emulator.convert_qat_model(str(_tiny(tmp_path, **broken)), str(tmp_path / "bad"))
    with pytest.raises(RuntimeError, match="does not exist"):
        emulator.convert_qat_model(str(tmp_path / "missing.onnx"), str(tmp_path / "bad"))
    assert not list(tmp_path.glob("bad*"))
