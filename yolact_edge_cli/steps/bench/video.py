"""`yedge bench` of a video model (docs/video.md §7): its keyframe and non-keyframe passes timed
apart on synthetic input, then a run of frames through the keyframe schedule, as predict runs
a video: the network's frames per second at the interval beside those of every frame a keyframe."""
from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ...backends.temporal import TemporalSession
from ...console import progress_bar
from .common import synthetic


@dataclass
class VideoTimes:
    keyframe_ms: float          # mean of the keyframe pass
    non_keyframe_ms: float      # mean of the non-keyframe pass
    ratio: float                # non-keyframe / keyframe
    interval: int
    frames: int                 # frames run through the schedule
    keyframes: int
    frames_per_s: float         # of that run, at `interval`
    every_frame_key_per_s: float  # 1000 / keyframe_ms: --keyframe-interval 1


def time_video(session: TemporalSession, loop: int, warmup: int, max_seconds: float) -> VideoTimes:
    """Each pass `loop` times after `warmup` runs (within --max-seconds, at least once each);
    then `loop` frames (at least one interval's worth) through the session's schedule."""
    budget_end = time.perf_counter() + max_seconds
    sample = synthetic(1, session.info.input_dtype, session.info.sample_shape)
    interval = session.interval
    frames = max(loop, interval)
    _, state = session.keyframe.run_keyframe(sample)
    passes = {"keyframe": lambda: session.keyframe.run_keyframe(sample),
              "non_keyframe": lambda: session.non_keyframe.run_non_keyframe(sample, state)}
    means: dict[str, float] = {}
    with progress_bar(2 * (warmup + loop) + frames, "bench video: keyframe, non-keyframe, schedule") as advance:
        for name, run in passes.items():
            for _ in range(warmup):
                if time.perf_counter() >= budget_end:
                    break
                run()
                advance(1)
            times = []
            for _ in range(loop):
                started = time.perf_counter()
                run()
                times.append(time.perf_counter() - started)
                advance(1)
                if time.perf_counter() >= budget_end:
                    break
            means[name] = float(np.mean(times)) * 1000
        keyframes = 0
        started = time.perf_counter()
        for frame in range(frames):
            keyframes += session.run_frame(sample, 0, frame)[1]
            advance(1)
        elapsed = time.perf_counter() - started
    key, nonkey = means["keyframe"], means["non_keyframe"]
    return VideoTimes(round(key, 2), round(nonkey, 2), round(nonkey / key, 3), interval, frames, keyframes,
                      round(frames / elapsed, 2), round(1000 / key, 2))
