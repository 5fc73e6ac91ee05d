"""What every backend's session is and gives, apart from the factory that picks one (the
package's __init__), so the backends import it and not the factory."""
from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np

from ..errors import EnvironmentProblem, InputError


@dataclass(frozen=True)
class ModelInfo:
    """What a loaded model takes and gives, independent of the backend."""

    batch_size: int | None  # None: dynamic batch
    input_dtype: str        # "float32" or "uint8"
    layout: str             # "fpn", "head" or "detect"
    output_names: tuple[str, ...]
    output_dtype: str = "float32"  # an .om built with --output_type FP16 gives float16
    sample_shape: tuple[int, ...] = (3, 550, 550)  # one sample's input (HWC for an AIPP .om)
    # a video model's (docs/video.md §4): its keyframe graph gives the key state after the
    # outputs, its non-keyframe graph takes it after the image
    gives_key_state: bool = False
    takes_key_state: bool = False

    def check_inputs(self, input_dtype: str, source: Path) -> None:
        """Inputs prepared as `input_dtype` are what this model takes (same byte size or not)."""
        if self.input_dtype != input_dtype:
            raise InputError(f"the model takes {self.input_dtype} input but the inputs were prepared as "
                             f"{input_dtype}", path=source,
                             hint=f"rerun `yedge prep --dtype {self.input_dtype}` or export with "
                                  f"--input-dtype {input_dtype}")


class Session(Protocol):
    """A session whose device times its own work (the NPU: execute apart from the copies) also
    has `last_times`, the RunTimes of its latest `run`."""

    info: ModelInfo
    device: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class RunTimes:
    """One run's time as ais_bench splits it (docs/ascend.md §1.4): `compute_ms` is the model's
    execution alone on an NPU, the whole call on the host backends; the copies to and from the
    device apart, where the device reports them."""

    compute_ms: float
    h2d_ms: float | None = None
    d2h_ms: float | None = None


def timed_run(session: Session, batch: np.ndarray) -> tuple[list[np.ndarray], RunTimes]:
    """Run a batch and say how long it took, the device's own figures where it has them."""
    started = time.perf_counter()
    outputs = session.run(batch)
    wall_ms = (time.perf_counter() - started) * 1000
    own = getattr(session, "last_times", None)
    return outputs, own if own is not None else RunTimes(wall_ms)


def require_cuda() -> None:
    import torch

    if not torch.cuda.is_available():
        raise EnvironmentProblem("CUDA is not available on this machine",
                                 hint="use --device cpu, or install a CUDA build of torch on a GPU host")
