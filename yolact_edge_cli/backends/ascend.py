"""Ascend backend through ais_bench's Python API (`InferSession`), in-process."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import EnvironmentProblem
from ..model.contract import key_state_count, layout_of_shapes, output_names
from .base import ModelInfo, RunTimes
from .temporal import OutputsInOrder

_DTYPES = ("float32", "float16", "uint8", "int8", "int32", "int64")


def _dtype_name(datatype) -> str:
    text = str(datatype).lower()
    return next((name for name in _DTYPES if name in text), "float32")


def model_info(inputs: list, outputs: list) -> ModelInfo:
    """What an .om takes and gives, from ais_bench's tensor descriptions (name, datatype,
    shape): a batch dimension of -1 is a dynamic batch; the outputs' shapes tell the layout (atc
    does not keep the ONNX output names), a video keyframe graph's key state left out."""
    first = inputs[0]
    batch = int(first.shape[0])
    shapes = [tuple(int(d) for d in out.shape[1:]) for out in outputs]
    key_state = key_state_count(shapes)
    layout = layout_of_shapes(shapes[:len(shapes) - key_state])
    return ModelInfo(batch_size=batch if batch > 0 else None, input_dtype=_dtype_name(first.datatype),
                     layout=layout, output_names=output_names(layout),
                     output_dtype=_dtype_name(outputs[0].datatype),
                     sample_shape=tuple(int(d) for d in first.shape[1:]), gives_key_state=key_state > 0,
                     takes_key_state=len(inputs) > 1)


class AscendApiSession(OutputsInOrder):
    def __init__(self, om: Path, device_id: int):
        from ais_bench.infer import interface

        self.device = f"npu:{device_id}"
        self._session = _device_call(self.device, interface.InferSession, device_id, str(om))
        # the copies' times, where this ais_bench keeps them (docs/ascend.md §1.5)
        self._memory = getattr(interface, "MemorySummary", None)
        self.info = model_info(self._session.get_inputs(), self._session.get_outputs())
        self._mode = "dymbatch" if self.info.batch_size is None else "static"
        self.last_times: RunTimes | None = None
        self._seen = self._counts()

    def _summary(self):
        """`summary()` in ais_bench 0.0.2's API guide, `sumary()` (sic) in some releases."""
        method = getattr(self._session, "summary", None) or self._session.sumary
        return method()

    def _copies(self) -> tuple[list[float], list[float]]:
        if self._memory is None:
            return [], []
        return self._memory.get_h2d_time_list(), self._memory.get_d2h_time_list()

    def _counts(self) -> tuple[int, int, int]:
        h2d, d2h = self._copies()
        return len(self._summary().exec_time_list), len(h2d), len(d2h)

    def _infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        outputs = [np.asarray(o) for o in _device_call(self.device, self._session.infer, feeds, mode=self._mode)]
        # NPU_compute_time is the execute alone, as ais_bench's own summary counts it
        executes = self._summary().exec_time_list
        h2d, d2h = self._copies()
        seen_exec, seen_h2d, seen_d2h = self._seen
        self.last_times = RunTimes(
            compute_ms=float(sum(end - start for start, end in executes[seen_exec:])),
            h2d_ms=float(sum(h2d[seen_h2d:])) if self._memory is not None else None,
            d2h_ms=float(sum(d2h[seen_d2h:])) if self._memory is not None else None)
        self._seen = (len(executes), len(h2d), len(d2h))
        return outputs

    def close(self) -> None:
        self._session.free_resource()


def _device_call(device: str, function, *args, **kwargs):
    """aclruntime reports a failed device call as a bare RuntimeError (its details printed on
    stdout, which goes to the log): said as ours, naming the device."""
    try:
        return function(*args, **kwargs)
    except RuntimeError as exc:
        raise EnvironmentProblem(f"ais_bench failed on {device}: {str(exc).strip()[:200]}",
                                 hint="read logs/ais_bench_api.log; check the device with `npu-smi info`") from None
