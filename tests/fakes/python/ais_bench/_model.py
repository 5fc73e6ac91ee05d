"""Loads a fake .om (see tests/fakes/fakeom.py) and runs it with onnxruntime."""
import os
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import fakeom  # noqa: E402

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


def visible_devices() -> list[int]:
    return [int(d) for d in os.environ.get("FAKE_NPU_DEVICES", "0").split(",")]


class OfflineModel:
    def __init__(self, path: str, device_id: int):
        import onnxruntime as ort

        if device_id not in visible_devices():
            raise RuntimeError(f"[ERROR] acl open device {device_id} failed, ret 507033")
        self.meta, onnx_bytes = fakeom.read(path)
        options = ort.SessionOptions()
        options.intra_op_num_threads = 1
        self.session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])
        first = self.session.get_inputs()[0]
        self.input_name = first.name
        self.input_dtype = np.dtype(_ORT_TYPES[first.type])
        self.sample_shape = tuple(first.shape[1:])
        self.output_dtype = np.dtype(np.float16 if self.meta["output_type"] == "FP16" else np.float32)
        self.outputs = self.session.get_outputs()
        self.exec_times: list[tuple[float, float]] = []

    @property
    def batch(self) -> int:
        return -1 if self.meta["dynamic_batch"] else self.meta["batch"]

    def sample_bytes(self) -> int:
        return int(np.prod(self.sample_shape)) * self.input_dtype.itemsize

    def run(self, data: np.ndarray) -> list[np.ndarray]:
        rows = data.shape[0]
        allowed = self.meta["dynamic_batch"] or [self.meta["batch"]]
        if rows not in allowed:
            raise RuntimeError(f"[ERROR] input batch {rows} not in model batch {allowed}")
        start = time.perf_counter() * 1000
        outs = self.session.run(None, {self.input_name: data.astype(self.input_dtype, copy=False)})
        self.exec_times.append((start, time.perf_counter() * 1000))
        return [o.astype(self.output_dtype) for o in outs]
