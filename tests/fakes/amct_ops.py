"""The AMCT emulator's deploy-model encoding, shared by the emulator (tests/fakes/python/amct_onnx)
and the fake ais_bench that runs the .om atc made of it. Never shipped.

Real AMCT writes AscendQuant / AscendDequant / AscendWeightQuant nodes whose int8 arithmetic only
the NPU runs. The emulator keeps AMCT's op names and replaces each QuantizeLinear→DequantizeLinear
pair by one node — AscendWeightQuant for a Conv weight, AscendQuant for an activation — holding
the pair's factors as attributes; `lower` turns them back into the pair, so onnxruntime computes
on the "device" exactly what the QDQ model computes."""
import numpy as np
import onnx
from onnx import helper, numpy_helper

# The ops of AMCT's deploy model, which atc parses (docs/atc-onnx-operators.md leaves Huawei's own out)
AMCT_OPS = {"AscendQuant", "AscendWeightQuant"}


def _value(initializers, name):
    return numpy_helper.to_array(initializers[name]) if name else np.array(0, np.uint8)


def to_deploy(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    initializers = {i.name: i for i in graph.initializer}
    producer = {out: node for node in graph.node for out in node.output}
    consumers: dict = {}
    for node in graph.node:
        for name in node.input:
            consumers.setdefault(name, []).append(node)
    nodes = []
    for node in graph.node:
        if node.op_type == "QuantizeLinear":
            continue  # folded into its DequantizeLinear's node below
        if node.op_type != "DequantizeLinear":
            nodes.append(node)
            continue
        quant = producer[node.input[0]]
        scale = _value(initializers, quant.input[1])
        zero = _value(initializers, quant.input[2] if len(quant.input) > 2 else "")
        weight = all(c.op_type == "Conv" and c.input[1] == node.output[0] for c in consumers.get(node.output[0], []))
        nodes.append(helper.make_node(
            "AscendWeightQuant" if weight else "AscendQuant", [quant.input[0]], list(node.output), name=node.name,
            scale=[float(v) for v in np.ravel(scale)], offset=[int(v) for v in np.ravel(zero)],
            axis=next((a.i for a in node.attribute if a.name == "axis"), 1), dst_type=str(zero.dtype)))
    del graph.node[:]
    graph.node.extend(nodes)
    return model


def lower(model: onnx.ModelProto) -> onnx.ModelProto:
    """The deploy model's Ascend nodes back as QuantizeLinear→DequantizeLinear pairs."""
    graph = model.graph
    if not any(node.op_type in AMCT_OPS for node in graph.node):
        return model
    nodes = []
    for node in graph.node:
        if node.op_type not in AMCT_OPS:
            nodes.append(node)
            continue
        attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
        dtype = np.dtype(attrs["dst_type"].decode() if isinstance(attrs["dst_type"], bytes) else attrs["dst_type"])
        per_channel = len(attrs["scale"]) > 1
        scale = np.asarray(attrs["scale"], np.float32)
        zero = np.asarray(attrs["offset"]).astype(dtype)
        if not per_channel:
            scale, zero = scale.reshape(()), zero.reshape(())
        names = [f"{node.name}_scale", f"{node.name}_zero", f"{node.name}_q"]
        graph.initializer.extend([numpy_helper.from_array(scale, names[0]), numpy_helper.from_array(zero, names[1])])
        axis = attrs["axis"]
        nodes.append(helper.make_node("QuantizeLinear", [node.input[0], *names[:2]], [names[2]], axis=axis))
        nodes.append(helper.make_node("DequantizeLinear", [names[2], *names[:2]], list(node.output), axis=axis))
    del graph.node[:]
    graph.node.extend(nodes)
    return model
