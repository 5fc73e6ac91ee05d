"""Driving CANN's AMCT for an INT8 `.om` (docs/ascend.md §6): `amct_onnx.convert_qat_model(
model_file, save_path)` turns a QDQ ONNX into the deploy model atc converts, written as
`<save_path>…deploy….onnx` beside a fake-quant model for accuracy checks.

AMCT documents what it accepts: QuantizeLinear/DequantizeLinear pairs with the same factors in
each pair, and per-channel factors only for Conv weights. onnxruntime's quantizer stores a weight
as int8 behind a lone DequantizeLinear and a bias as int32 the same way, which are not pairs, so
`paired_form` first gives every weight its float value back behind a Q/DQ pair of the same
factors (the same numbers) and every bias its float value: the form AMCT's documentation
describes, computing what the INT8 file computes."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EnvironmentProblem, InputError

SAVE_PREFIX = "yolact_edge_int8"


def import_amct():
    try:
        import amct_onnx
    except ImportError:
        raise EnvironmentProblem("an INT8 .om needs CANN's AMCT (amct_onnx), which is not installed",
                                 hint="pip install the amct_onnx wheel of your CANN toolkit "
                                      "(<toolkit>/tools/amct/), then rerun `yedge convert`") from None
    return amct_onnx


def is_quantized(onnx_path: Path) -> bool:
    """Whether an ONNX holds QuantizeLinear/DequantizeLinear nodes (a QDQ model)."""
    import onnx

    try:
        graph = onnx.load(str(onnx_path), load_external_data=False).graph
    except Exception as exc:  # protobuf's DecodeError and the like: not an ONNX model
        raise InputError(f"cannot read the ONNX model ({str(exc).splitlines()[0][:100]})", path=onnx_path,
                         hint="re-export it with `yedge export`") from None
    return any(node.op_type == "DequantizeLinear" for node in graph.node)


def paired_form(source: Path, dest: Path) -> None:
    """`source`'s QDQ graph with every initializer behind a lone DequantizeLinear made float
    again: a Conv weight (int8) behind a new QuantizeLinear paired with its DequantizeLinear, a
    bias (int32) as a plain float initializer."""
    import onnx
    from onnx import helper, numpy_helper

    model = onnx.load(str(source))
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producers = {out for node in graph.node for out in node.output}
    rewritten, biases = [], {}
    for node in graph.node:
        stored = node.input[0] if node.op_type == "DequantizeLinear" else ""
        if stored not in initializers or stored in producers:
            rewritten.append(node)
            continue
        value = numpy_helper.to_array(initializers[stored])
        scale = numpy_helper.to_array(initializers[node.input[1]])
        zero = numpy_helper.to_array(initializers[node.input[2]]) if len(node.input) > 2 and node.input[2] else 0
        axis = next((a.i for a in node.attribute if a.name == "axis"), 1)
        shape = [1] * value.ndim
        if np.ndim(scale):
            shape[axis] = -1
        real = ((value.astype(np.float64) - np.reshape(zero, shape)) * np.reshape(scale, shape)).astype(np.float32)
        float_name = f"{stored}_float"
        graph.initializer.append(numpy_helper.from_array(real, float_name))
        if value.dtype == np.int8:  # a weight: Q → DQ with the same factors
            paired = f"{stored}_paired"
            rewritten.append(helper.make_node("QuantizeLinear", [float_name, *node.input[1:]], [paired],
                                              name=f"{node.name}_pair", axis=axis))
            rewritten.append(helper.make_node("DequantizeLinear", [paired, *node.input[1:]], list(node.output),
                                              name=node.name, axis=axis))
        else:  # a bias: its float value, read by the Conv directly
            biases[node.output[0]] = float_name
        graph.initializer.remove(initializers[stored])
    for node in rewritten:
        for i, name in enumerate(node.input):
            node.input[i] = biases.get(name, name)
    del graph.node[:]
    graph.node.extend(rewritten)
    used = {name for node in rewritten for name in node.input}
    for unused in [i for i in graph.initializer if i.name not in used]:  # the biases' int32 factors
        graph.initializer.remove(unused)
    onnx.save(model, str(dest))


def deploy_model(source: Path, work_dir: Path, log_path: Path) -> Path:
    """AMCT's deploy model of a QDQ ONNX, written under `work_dir` (AMCT's own lines in the log)."""
    from .aisbench import quiet_stdout

    amct = import_amct()
    work_dir.mkdir(parents=True, exist_ok=True)
    paired = work_dir / f"{SAVE_PREFIX}_paired.onnx"
    paired_form(source, paired)
    save_path = work_dir / SAVE_PREFIX
    try:
        with quiet_stdout(log_path):
            amct.convert_qat_model(str(paired), str(save_path))
    except Exception as exc:  # AMCT raises its own exception types for models it refuses
        raise InputError(f"AMCT refused the INT8 model ({str(exc).splitlines()[0][:160]})", path=source,
                         hint=f"its log: {log_path}; re-quantize with `yedge quantize`") from None
    finally:
        paired.unlink(missing_ok=True)
    written = sorted(work_dir.glob(f"{SAVE_PREFIX}*deploy*.onnx"))
    if not written:
        raise InputError("AMCT wrote no deploy model", path=work_dir, hint=f"read its log: {log_path}")
    return written[0]
