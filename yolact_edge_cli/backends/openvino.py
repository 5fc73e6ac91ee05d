"""OpenVINO backend (the optional extra `yedge[openvino]`): the exported ONNX, float or INT8 QDQ,
on the CPU in fp32, bf16 or fp16 (OpenVINO's inference precision hint) or int8 (the QDQ file as
it is quantized, everything else fp32).

The hint is always set: OpenVINO's own default on a CPU with AMX is bf16, which would make
"fp32" silently mean something else (docs/quantization.md)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..choices import Precision
from ..errors import EnvironmentProblem, InputError, UsageError
from ..model.contract import KEY_STATE_NAMES, layout_of
from .base import ModelInfo
from .temporal import OutputsInOrder

# --precision → INFERENCE_PRECISION_HINT; int8 runs the QDQ file's quantized layers in int8 and
# keeps the rest in fp32, as onnxruntime does
HINTS = {Precision.FP32.value: "f32", Precision.BF16.value: "bf16", Precision.FP16.value: "f16",
         Precision.INT8.value: "f32"}
_DTYPES = {"f32": "float32", "u8": "uint8"}


def import_openvino():
    try:
        import openvino
    except ImportError:
        raise EnvironmentProblem("the openvino backend needs OpenVINO, which is not installed",
                                 hint="pip install 'yedge[openvino]'") from None
    return openvino


class OpenVinoSession(OutputsInOrder):
    def __init__(self, path: Path | None, device: str = "cpu", precision: str = Precision.FP32.value):
        if device != "cpu":
            raise UsageError(f"the openvino backend runs on the CPU, not {device}", hint="use --device cpu")
        if path is None or not Path(path).is_file():
            raise InputError("ONNX model not found", path=path,
                             hint="run `yedge export --weights X.pth` first, or pass --model")
        ov = import_openvino()
        core = ov.Core()
        try:
            model = core.read_model(str(path))
            self._compiled = core.compile_model(model, "CPU", {"INFERENCE_PRECISION_HINT": HINTS[precision]})
        except RuntimeError as exc:
            raise InputError(f"OpenVINO cannot load the model ({str(exc).splitlines()[0][:100]})",
                             path=path, hint="re-export it with `yedge export`") from None
        self._request = self._compiled.create_infer_request()
        self.device = device
        first = model.inputs[0]
        batch = first.get_partial_shape()[0]
        every = [o.get_any_name() for o in model.outputs]
        names = tuple(n for n in every if n not in KEY_STATE_NAMES)
        self.info = ModelInfo(batch_size=batch.get_length() if batch.is_static else None,
                              input_dtype=_DTYPES.get(first.get_element_type().get_type_name(), "float32"),
                              layout=layout_of(list(names)), output_names=names,
                              gives_key_state=len(names) < len(every), takes_key_state=len(model.inputs) > 1)

    def _infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        results = self._request.infer({k: np.ascontiguousarray(a) for k, a in enumerate(feeds)})
        # copied: the request's output tensors are reused by the next infer
        return [np.array(results[output], dtype=np.float32) for output in self._compiled.outputs]

    def close(self) -> None:
        """Nothing to release: the compiled model goes with the object."""
