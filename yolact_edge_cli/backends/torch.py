"""PyTorch backend: the model straight from the checkpoint, on CPU or CUDA (on CUDA fp16 with
--precision fp16 or --half, and channels-last; on the CPU bf16 through autocast), producing the
same outputs as the exported graph."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.contract import output_names
from .base import ModelInfo, require_cuda


class TorchSession:
    def __init__(self, weights: Path | None, *, config: str = "auto", layout: str = "fpn",
                 input_dtype: str = "float32", device: str = "cpu", precision: str = "fp32",
                 batch_size: int | None = None, compiled: bool = False):
        import torch

        from ..model.checkpoint import load_model
        from ..model.yolact import export_module

        if weights is None:
            raise InputError("no checkpoint for the torch backend",
                             hint="run `yedge export --weights X.pth` first, or pass --model X.pth")
        if device == "cuda":
            require_cuda()
        self._torch = torch
        self.device = device
        self._half = precision == "fp16"
        # bf16: the CPU's autocast, the weights kept fp32 (convolutions and products run in bf16)
        self._autocast = precision == "bf16"
        module = export_module(load_model(weights, config), layout, input_dtype).eval().to(device)
        if self._half:
            module = module.half()
        if device == "cuda":
            module = module.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        if compiled:  # reduce-overhead: each static input shape is captured once as a CUDA graph
            module = torch.compile(module, mode="reduce-overhead", dynamic=False)  # type: ignore[assignment]
        self._module = module
        self.info = ModelInfo(batch_size=batch_size, input_dtype=input_dtype, layout=layout,
                              output_names=output_names(layout))

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self._autocast):
            x = torch.from_numpy(batch).to(self.device)
            if x.is_floating_point() and self._half:
                x = x.half()
            if self.device == "cuda":
                x = x.contiguous(memory_format=torch.channels_last)
            outputs = self._module(x)
            return [o.float().cpu().numpy() for o in outputs]

    def close(self) -> None:
        """Nothing to release: the session goes with the object."""
