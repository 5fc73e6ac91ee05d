"""Test-only emulator of CANN's AMCT for ONNX (`amct_onnx`), never shipped: the one call yedge
makes, `convert_qat_model(model_file, save_path, record_file=None)`, as strict as AMCT documents
it (docs/ascend.md §6):
- only QuantizeLinear/DequantizeLinear pairs (a QuantizeLinear that is not a graph output feeds
  DequantizeLinear only; every DequantizeLinear reads a QuantizeLinear), each pair with the
  same scale and zero point;
- per-channel factors only for weights, and only Conv's;
- a float32 graph input;
- it writes `<save_path>_fake_quant_model.onnx` (runs in onnxruntime) and
  `<save_path>_deploy_model.onnx` (for atc; its encoding: tests/fakes/amct_ops.py), replacing
  files of those names, and `record_file` when given.
Refusals raise RuntimeError after an [ERROR] line, as AMCT's Python API does."""
import sys
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, numpy_helper

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import amct_ops  # noqa: E402


def _refuse(message: str) -> None:
    print(f"[AMCT]:[AMCT]: [ERROR]: {message}", flush=True)
    raise RuntimeError(message)


def _check(model: onnx.ModelProto) -> None:
    graph = model.graph
    if graph.input[0].type.tensor_type.elem_type != TensorProto.FLOAT:
        _refuse(f"input {graph.input[0].name} is not float32: only float32 models can be converted")
    initializers = {i.name: numpy_helper.to_array(i) for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    outputs = {o.name for o in graph.output}
    pairs = 0
    for node in graph.node:
        if node.op_type == "QuantizeLinear" and node.output[0] not in outputs:
            if any(c.op_type != "DequantizeLinear" for c in consumers.get(node.output[0], [])):
                _refuse(f"QuantizeLinear {node.name} is not paired with a DequantizeLinear")
        if node.op_type != "DequantizeLinear":
            continue
        quant = producer.get(node.input[0])
        if quant is None or quant.op_type != "QuantizeLinear":
            _refuse(f"DequantizeLinear {node.name} is not paired with a QuantizeLinear")
        for position in (1, 2):
            mine = initializers.get(node.input[position]) if len(node.input) > position else None
            theirs = initializers.get(quant.input[position]) if len(quant.input) > position else None
            if mine is None or theirs is None or not np.array_equal(mine, theirs):
                _refuse(f"QuantizeLinear {quant.name} and DequantizeLinear {node.name} have different "
                        "quantization factors")
        if np.size(initializers[node.input[1]]) > 1:
            readers = consumers.get(node.output[0], [])
            if not readers or any(r.op_type != "Conv" or r.input[1] != node.output[0] for r in readers):
                _refuse(f"per-channel quantization of {node.name}: only Conv weights may be per-channel")
        pairs += 1
    if not pairs:
        _refuse("no QuantizeLinear/DequantizeLinear pairs: not a QAT model")


def convert_qat_model(model_file, save_path, record_file=None):
    path = Path(model_file)
    if not path.is_file():
        _refuse(f"model_file {model_file} does not exist")
    try:
        model = onnx.load(str(path))
    except Exception:
        _refuse(f"model_file {model_file} is not an ONNX model")
    _check(model)
    prefix = Path(save_path)
    if not prefix.parent.is_dir():
        _refuse(f"the folder of save_path {save_path} does not exist")
    print("[AMCT]:[AMCT]: [INFO]: Parse QAT model success", flush=True)
    onnx.save(model, f"{prefix}_fake_quant_model.onnx")
    onnx.save(amct_ops.to_deploy(model), f"{prefix}_deploy_model.onnx")
    if record_file:
        Path(record_file).write_text("")
    print(f"[AMCT]:[AMCT]: [INFO]: The model is saved in {prefix}_deploy_model.onnx", flush=True)
