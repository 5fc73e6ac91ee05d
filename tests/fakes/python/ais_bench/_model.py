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
        self.aipp = self.meta.get("aipp")
        if self.aipp:  # AIPP: the .om takes uint8 RGB HWC pixels
            self.input_dtype = np.dtype(np.uint8)
            self.sample_shape = (*self.aipp["size"], 3)
        else:
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
        data = data.astype(self.input_dtype, copy=False)
        if self.aipp:  # out = (in − min_chn) · var_reci_chn, then the model's NCHW float input
            minimum = np.asarray(self.aipp["min"], np.float32)
            scale = np.asarray(self.aipp["var_reci"], np.float32)
            data = np.ascontiguousarray(((data.astype(np.float32) - minimum) * scale).transpose(0, 3, 1, 2))
        outs = self.session.run(None, {self.input_name: data})
        self.exec_times.append((start, time.perf_counter() * 1000))
        return [o.astype(self.output_dtype) for o in outs]
