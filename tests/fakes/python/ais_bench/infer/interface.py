"""Emulated `ais_bench.infer.interface` (API_GUIDE.md's surface): InferSession and
MemorySummary. Like aclruntime it prints [INFO] lines on the process's C-level stdout (file
descriptor 1), not through Python; `summary().exec_time_list` holds (start, end) of each
execute alone, the copies being in MemorySummary's H2D/D2H lists."""
import os
from dataclasses import dataclass

import aclruntime  # as the real module, it needs CANN's libraries to import
import numpy as np

from .._model import OfflineModel


@dataclass
class tensor_desc:  # noqa: N801 - aclruntime's name
    name: str
    datatype: str
    format: int
    shape: list
    size: int
    realsize: int


class _Summary:
    def __init__(self, times):
        self.exec_time_list = list(times)


def _info(text: str) -> None:
    os.write(1, f"[INFO] {text}\n".encode())


class MemorySummary:
    @staticmethod
    def get_h2d_time_list():
        return list(aclruntime.H2D_TIMES)

    @staticmethod
    def get_d2h_time_list():
        return list(aclruntime.D2H_TIMES)

    @staticmethod
    def reset():
        aclruntime.H2D_TIMES.clear()
        aclruntime.D2H_TIMES.clear()


class InferSession:
    def __init__(self, device_id: int, model_path: str, acl_json_path=None, debug=False, loop=1):
        if not str(model_path).endswith(".om"):
            raise RuntimeError("model path must end with .om")
        _info("acl init success")
        _info(f"open device {device_id} success")
        self._model = OfflineModel(model_path, device_id)
        _info(f"load model {model_path} success")
        self.loop = loop

    def get_inputs(self):
        m = self._model
        shape = [m.batch, *m.sample_shape]
        size = abs(m.batch) * m.sample_bytes()
        more = [tensor_desc(name, "dtype.float32", 0, [m.batch, *dims], abs(m.batch) * 4 * int(np.prod(dims)),
                            abs(m.batch) * 4 * int(np.prod(dims))) for name, dims in m.more_inputs]
        return [tensor_desc(m.input_name, f"dtype.{m.input_dtype.name}", 0, shape, size, size), *more]

    def get_outputs(self):
        m = self._model
        return [tensor_desc(o.name, f"dtype.{m.output_dtype.name}", 0, [m.batch, *o.shape[1:]], 0, 0)
                for o in m.outputs]

    def infer(self, feeds, mode="static", custom_sizes=100000, out_array=True):
        if mode not in ("static", "dymbatch"):
            raise RuntimeError(f"mode {mode} is not emulated")
        data = feeds[0]
        if not isinstance(data, np.ndarray):
            raise RuntimeError(f"type:{type(data)} invalid")
        if mode == "static":
            if self._model.batch == -1:
                raise RuntimeError("[ERROR] dynamic batch model needs mode='dymbatch'")
            rows = self._model.batch
        else:  # the batch is the first dimension of the feed's shape, as _dymbatch_prepare reads it
            if self._model.batch != -1:
                raise RuntimeError("not a dymbatch model!")
            rows = data.shape[0]
            self._model.set_dynamic_batch(rows)
            _info(f"set dynamic batch size {rows} success")
        for _ in range(self.loop):
            outputs = self._model.run(data, rows, tuple(feeds[1:]))
        return outputs

    def summary(self):
        return _Summary(self._model.exec_times)

    def reset_summaryinfo(self):
        self._model.exec_times.clear()

    def free_resource(self):
        _info("unload model success, model Id is 1")
        self._model = None
