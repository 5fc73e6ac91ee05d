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
        from ..model.yolact import VideoPass, export_module

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
        net = load_model(weights, config)
        # a video checkpoint (docs/video.md): its keyframe pass, which also gives the key state,
        # and its non-keyframe pass, which takes it
        passes = [VideoPass.KEYFRAME, VideoPass.NON_KEYFRAME] if net.cfg.video else [VideoPass.IMAGE]
        self._modules = [self._prepared(export_module(net, layout, input_dtype, video_pass=p), compiled)
                         for p in passes]
        self.info = ModelInfo(batch_size=batch_size, input_dtype=input_dtype, layout=layout,
                              output_names=output_names(layout), gives_key_state=net.cfg.video is not None)

    def _prepared(self, module, compiled: bool):
        torch = self._torch
        module = module.eval().to(self.device)
        if self._half:
            module = module.half()
        if self.device == "cuda":
            module = module.to(memory_format=torch.channels_last)
        if compiled:  # reduce-overhead: each static input shape is captured once as a CUDA graph
            module = torch.compile(module, mode="reduce-overhead", dynamic=False)
        return module

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._run(0, batch)[:len(self.info.output_names)]

    def run_keyframe(self, batch: np.ndarray) -> tuple[list[np.ndarray], tuple[np.ndarray, ...]]:
        outputs = self._run(0, batch)
        count = len(self.info.output_names)
        return outputs[:count], tuple(outputs[count:])

    def run_non_keyframe(self, batch: np.ndarray, state: tuple[np.ndarray, ...]) -> list[np.ndarray]:
        return self._run(1, batch, state)

    def _run(self, which: int, batch: np.ndarray, state: tuple[np.ndarray, ...] = ()) -> list[np.ndarray]:
        torch = self._torch
        with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self._autocast):
            inputs = []
            for array in (batch, *state):
                x = torch.from_numpy(array).to(self.device)
                if x.is_floating_point() and self._half:
                    x = x.half()
                if self.device == "cuda":
                    x = x.contiguous(memory_format=torch.channels_last)
                inputs.append(x)
            outputs = self._modules[which](*inputs)
            return [o.float().cpu().numpy() for o in outputs]

    def close(self) -> None:
        """Nothing to release: the session goes with the object."""
