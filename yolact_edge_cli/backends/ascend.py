"""Ascend backend through ais_bench's Python API (`InferSession`), in-process."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..model.contract import FPN_OUTPUT_NAMES, HEAD_OUTPUT_NAMES
from . import ModelInfo

_DTYPES = ("float32", "float16", "uint8", "int8", "int32", "int64")


def _dtype_name(datatype) -> str:
    text = str(datatype).lower()
    return next((name for name in _DTYPES if name in text), "float32")


class AscendApiSession:
    def __init__(self, om: Path, device_id: int):
        from ais_bench.infer.interface import InferSession

        self._session = InferSession(device_id, str(om))
        first = self._session.get_inputs()[0]
        outputs = self._session.get_outputs()
        batch = int(first.shape[0])
        layout = "fpn" if len(outputs) == len(FPN_OUTPUT_NAMES) else "head"
        self.device = f"npu:{device_id}"
        self._mode = "static" if batch > 0 else "dymbatch"
        self.info = ModelInfo(batch_size=batch if batch > 0 else None,
                              input_dtype=_dtype_name(first.datatype), layout=layout,
                              output_names=FPN_OUTPUT_NAMES if layout == "fpn" else HEAD_OUTPUT_NAMES,
                              output_dtype=_dtype_name(outputs[0].datatype),
                              sample_shape=tuple(int(d) for d in first.shape[1:]))

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return [np.asarray(o) for o in self._session.infer([batch], mode=self._mode)]

    def close(self) -> None:
        self._session.free_resource()
