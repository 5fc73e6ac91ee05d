"""A video model's two passes behind one session (docs/video.md §5): each video's frames run in
order, every `interval`-th one as a keyframe, the others through the non-keyframe pass with the
key state of the video's latest keyframe. The engines send every frame of a video, in order, to
one replica (stream/schedule.py), so a session keeps the state of one video: the one it runs."""
from __future__ import annotations

from typing import Protocol

import numpy as np

from ..errors import UsageError
from .base import ModelInfo

KeyState = tuple[np.ndarray, ...]


class KeyframePass(Protocol):
    info: ModelInfo
    device: str

    def run(self, batch: np.ndarray) -> list[np.ndarray]: ...

    def run_keyframe(self, batch: np.ndarray) -> tuple[list[np.ndarray], KeyState]: ...

    def close(self) -> None: ...


class NonKeyframePass(Protocol):
    def run_non_keyframe(self, batch: np.ndarray, state: KeyState) -> list[np.ndarray]: ...

    def close(self) -> None: ...


class OutputsInOrder:
    """The passes of a session whose one call (`_infer`, a list of inputs in the model's order)
    gives every output in order: the layout's, then a keyframe graph's key state."""

    info: ModelInfo

    def _infer(self, feeds: list[np.ndarray]) -> list[np.ndarray]:
        raise NotImplementedError

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self._infer([batch])[:len(self.info.output_names)]

    def run_keyframe(self, batch: np.ndarray) -> tuple[list[np.ndarray], KeyState]:
        outputs = self._infer([batch])
        count = len(self.info.output_names)
        return outputs[:count], tuple(outputs[count:])

    def run_non_keyframe(self, batch: np.ndarray, state: KeyState) -> list[np.ndarray]:
        # the key state as the keyframe graph gave it (float16 from an FP16-output .om): float32 in
        return self._infer([batch, *(np.ascontiguousarray(s, dtype=np.float32) for s in state)])


class TemporalSession:
    """`run(batch)`: still images, each a keyframe. `run_frame(sample, unit, rank)`: one frame
    of source `unit`, as a keyframe when `rank` (its position among the video's frames that run)
    is a multiple of `interval`, when it is a still image (`rank` None), or when this session
    holds no state of its video (its first frame here: a replica that was restarted mid-video
    starts again with a keyframe)."""

    def __init__(self, keyframe: KeyframePass, non_keyframe: NonKeyframePass, interval: int):
        if interval < 1:
            raise UsageError(f"--keyframe-interval {interval}: a video needs a keyframe every N ≥ 1 frames",
                             hint="pass --keyframe-interval 1 (every frame a keyframe) or more; the reference uses 5")
        if keyframe.info.batch_size not in (None, 1):
            raise UsageError(f"a video model runs its frames one by one, and this one has a static batch of "
                             f"{keyframe.info.batch_size}", hint="export it with --batch-size 1 or --dynamic-batch")
        self.keyframe, self.non_keyframe, self.interval = keyframe, non_keyframe, interval
        self.info, self.device = keyframe.info, keyframe.device
        self._unit: int | None = None
        self._state: KeyState | None = None

    def run(self, batch: np.ndarray) -> list[np.ndarray]:
        return self.keyframe.run(batch)

    def run_frame(self, sample: np.ndarray, unit: int, rank: int | None) -> tuple[list[np.ndarray], bool]:
        """One sample (batch of 1): its outputs, and whether it ran as a keyframe."""
        if rank is None or rank % self.interval == 0 or unit != self._unit or self._state is None:
            outputs, self._state = self.keyframe.run_keyframe(sample)
            self._unit = unit
            return outputs, True
        return self.non_keyframe.run_non_keyframe(sample, self._state), False

    def close(self) -> None:
        self.keyframe.close()
        if self.non_keyframe is not self.keyframe:
            self.non_keyframe.close()
