"""Loads a fake .om (see tests/fakes/fakeom.py) and runs it with onnxruntime, as the device
would: the input is taken as bytes (sizes compared, never converted), copied in (H2D), executed
(the only part timed as execute), copied out (D2H); all under aclruntime's GIL."""
import os
import sys
import time
from pathlib import Path

import aclruntime
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
import fakeom  # noqa: E402

_ORT_TYPES = {"tensor(float)": np.float32, "tensor(uint8)": np.uint8}


def physical_device(device_id: int) -> int:
    """The host's NPU behind `device_id`. The host has $FAKE_NPU_DEVICES; as with CANN, a process
    started with ASCEND_RT_VISIBLE_DEVICES=3,5 sees only those, as devices 0 and 1 (Ray sets it
    for each task or actor that holds NPUs)."""
    devices = [int(d) for d in os.environ.get("FAKE_NPU_DEVICES", "0").split(",")]
    visible = os.environ.get("ASCEND_RT_VISIBLE_DEVICES")
    if visible is not None:
        mapped = [int(d) for d in visible.split(",") if d.strip()]
        if any(d not in devices for d in mapped):
            raise RuntimeError(f"[ERROR] acl init failed, ret 507033: ASCEND_RT_VISIBLE_DEVICES={visible}")
        if not 0 <= device_id < len(mapped):
            raise RuntimeError(f"[ERROR] acl open device {device_id} failed, ret 507033")
        return mapped[device_id]
    if device_id not in devices:
        raise RuntimeError(f"[ERROR] acl open device {device_id} failed, ret 507033")
    return device_id


def _ms() -> float:
    return time.perf_counter() * 1000


class OfflineModel:
    def __init__(self, path: str, device_id: int):
        import onnxruntime as ort

        self.device_id = physical_device(device_id)
        self.meta, onnx_bytes = fakeom.read(path)
        if self.meta.get("amct"):  # an INT8 .om: its AMCT nodes run as the QDQ pairs they came from
            import amct_ops
            import onnx

            onnx_bytes = amct_ops.lower(onnx.load_from_string(onnx_bytes)).SerializeToString()
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
            self.input_dtype = np.dtype(np.float16 if self.meta.get("input_fp16") else _ORT_TYPES[first.type])
            self.sample_shape = tuple(first.shape[1:])
        self.output_dtype = np.dtype(np.float16 if self.meta["output_type"] == "FP16" else np.float32)
        self.outputs = self.session.get_outputs()
        # a graph's further inputs (a video model's key state): float32, as exported
        self.more_inputs = [(i.name, tuple(i.shape[1:])) for i in self.session.get_inputs()[1:]]
        self.exec_times: list[tuple[float, float]] = []

    @property
    def batch(self) -> int:
        return -1 if self.meta["dynamic_batch"] else self.meta["batch"]

    def sample_bytes(self) -> int:
        return int(np.prod(self.sample_shape)) * self.input_dtype.itemsize

    def set_dynamic_batch(self, rows: int) -> None:
        """aclmdlSetDynamicBatchSize: only a dynamic-batch model has the batch input it sets."""
        if self.batch != -1:
            print("[ERROR] aclmdlSetDynamicBatchSize failed, ret[145000]: "
                  "the model is not a dynamic batch model", flush=True)
            raise RuntimeError("set dynamic batch size failed")
        if rows not in self.meta["dynamic_batch"]:
            raise RuntimeError(f"[ERROR] dynamic batch {rows} not in model batches {self.meta['dynamic_batch']}")

    def run(self, data: np.ndarray, rows: int, more: tuple = ()) -> list[np.ndarray]:
        """One execute of `rows` samples on `data`'s bytes, whatever its dtype: the tool compares
        byte sizes only; `more`: one array per further input, in the model's order."""
        expected = rows * self.sample_bytes()
        if data.nbytes != expected:
            raise RuntimeError(f"[ERROR] input 0 size {data.nbytes} does not match the model's {expected}")
        if len(more) != len(self.more_inputs):
            raise RuntimeError(f"[ERROR] the model has {1 + len(self.more_inputs)} inputs, {1 + len(more)} given")
        feeds = {}
        for k, ((name, shape), array) in enumerate(zip(self.more_inputs, more), start=1):
            if array.nbytes != rows * int(np.prod(shape)) * 4:
                raise RuntimeError(f"[ERROR] input {k} size {array.nbytes} does not match the model's")
            feeds[name] = np.frombuffer(np.ascontiguousarray(array).tobytes(), np.float32).reshape(rows, *shape)
        with aclruntime.GIL:
            start = _ms()
            device = np.frombuffer(np.ascontiguousarray(data).tobytes(), dtype=self.input_dtype)
            device = device.reshape(rows, *self.sample_shape)
            h2d = _ms() - start
            begin = _ms()
            if self.aipp:  # out = (in − min_chn) · var_reci_chn, then the model's NCHW float input
                minimum = np.asarray(self.aipp["min"], np.float32)
                scale = np.asarray(self.aipp["var_reci"], np.float32)
                device = np.ascontiguousarray(((device.astype(np.float32) - minimum) * scale).transpose(0, 3, 1, 2))
            elif device.dtype == np.float16:  # the .om's own cast after its fp16 input
                device = device.astype(np.float32)
            outs = self.session.run(None, {self.input_name: device, **feeds})
            end = _ms()
            self.exec_times.append((begin, end))
            results = [o.astype(self.output_dtype) for o in outs]
            d2h = _ms() - end
        aclruntime.H2D_TIMES.append(h2d)
        aclruntime.D2H_TIMES.append(d2h)
        aclruntime.trace(device=self.device_id, execute_ms=end - begin, h2d_ms=h2d, d2h_ms=d2h)
        return results
