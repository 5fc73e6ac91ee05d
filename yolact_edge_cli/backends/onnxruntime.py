"""onnxruntime backend: the embedded default (CPU; TensorRT and CUDA providers when asked and
present)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EnvironmentProblem, InputError
from ..model.contract import KEY_STATE_NAMES, layout_of
from .base import ModelInfo
from .temporal import OutputsInOrder

_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}


def execution_providers(device: str, available: list[str], model: Path, precision: str = "fp32") -> list:
    """onnxruntime's providers, best first: on CUDA, TensorRT where this onnxruntime has it (its
    engines cached beside the model, built once per model and batch size: minutes; fp16 and int8
    need it: fp16 as TensorRT's builder flag, int8 from the QDQ file's own factors), then CUDA,
    then the CPU for what neither runs."""
    if device != "cuda":
        return ["CPUExecutionProvider"]
    if "CUDAExecutionProvider" not in available:
        raise EnvironmentProblem("onnxruntime has no CUDA provider here",
                                 hint="install onnxruntime-gpu, or use --device cpu")
    providers: list = ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if "TensorrtExecutionProvider" in available:
        cache = model.parent / (f".{model.stem}.trt" if precision == "fp32" else f".{model.stem}.{precision}.trt")
        reduced = {"fp16": {"trt_fp16_enable": True}, "int8": {"trt_int8_enable": True}}.get(precision, {})
        providers.insert(0, ("TensorrtExecutionProvider", {
            "trt_engine_cache_enable": True, "trt_engine_cache_path": str(cache), **reduced}))
    elif precision != "fp32":
        raise EnvironmentProblem(f"onnxruntime runs {precision} on CUDA through TensorRT, which this "
                                 "onnxruntime lacks", hint="install onnxruntime-gpu with TensorRT, "
                                 "or use --precision fp32")
    return providers


class OrtSession(OutputsInOrder):
    def __init__(self, path: Path | None, device: str = "cpu", precision: str = "fp32"):
        import onnxruntime as ort

        if path is None or not Path(path).is_file():
            raise InputError("ONNX model not found", path=path,
                             hint="run `yedge export --weights X.pth` first, or pass --model")
        providers = execution_providers(device, ort.get_available_providers(), Path(path), precision)
        options = ort.SessionOptions()
        options.log_severity_level = 3
        # idle threads sleep instead of spinning: other processes (decode, host) share the cores
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        try:
            self._session = ort.InferenceSession(str(path), options, providers=providers)
        except Exception as exc:  # onnxruntime raises its own untyped errors for bad files
            raise InputError(f"onnxruntime cannot load the model ({str(exc).splitlines()[0][:100]})",
                             path=path, hint="re-export it with `yedge export`") from None
        self.device = device
        first, *more = self._session.get_inputs()
        self._input_name = first.name
        batch = first.shape[0]
        every = [o.name for o in self._session.get_outputs()]
        names = tuple(n for n in every if n not in KEY_STATE_NAMES)
        self._inputs = [first.name, *(i.name for i in more)]
        self.info = ModelInfo(batch_size=batch if isinstance(batch, int) else None,
                              input_dtype=_DTYPES.get(first.type, first.type),
                              layout=layout_of(list(names)), output_names=names,
                              gives_key_state=len(names) < len(every), takes_key_state=bool(more))

    def _infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        return self._session.run(None, dict(zip(self._inputs, feeds)))

    def close(self) -> None:
        """Nothing to release: the session goes with the object."""
