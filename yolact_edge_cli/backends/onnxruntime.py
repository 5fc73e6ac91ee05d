"""onnxruntime backend: the embedded default (CPU; CUDA provider when asked and present)."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EnvironmentProblem, InputError
from ..model.contract import layout_of
from . import ModelInfo

_DTYPES = {"tensor(float)": "float32", "tensor(uint8)": "uint8"}


class OrtSession:
    def __init__(self, path: Path | None, device: str = "cpu"):
        import onnxruntime as ort

        if path is None or not Path(path).is_file():
            raise InputError("ONNX model not found", path=path,
                             hint="run `yedge export --weights X.pth` first, or pass --model")
        providers = ["CPUExecutionProvider"]
        if device == "cuda":
            if "CUDAExecutionProvider" not in ort.get_available_providers():
                raise EnvironmentProblem("onnxruntime has no CUDA provider here",
                                         hint="install onnxruntime-gpu, or use --device cpu")
            providers.insert(0, "CUDAExecutionProvider")
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
        first = self._session.get_inputs()[0]
        self._input_name = first.name
        batch = first.shape[0]
        names = tuple(o.name for o in self._session.get_outputs())
        self.info = ModelInfo(batch_size=batch if isinstance(batch, int) else None,
                              input_dtype=_DTYPES.get(first.type, first.type),
                              layout=layout_of(list(names)), output_names=names)

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._session.run(None, {self._input_name: batch})

    def close(self) -> None:
        """Nothing to release: the session goes with the object."""
