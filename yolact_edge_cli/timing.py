"""The one stage timer: seconds per stage, summed over the items of a run, as torchvision's
MetricLogger keeps its meters. The host part fills one per image; eval and bench add those up and
report milliseconds per image."""
from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator, Mapping

# what a report of stages adds after them, summing or dividing them: not a stage of its own
HOST_TOTAL, WALL, IMAGES_PER_SECOND = "host_total", "wall", "images_per_second"
SUMMARIES = (HOST_TOTAL, WALL, IMAGES_PER_SECOND)


class StageTimes(dict[str, float]):
    @contextlib.contextmanager
    def time(self, stage: str) -> Iterator[None]:
        """Add the seconds the block takes to `stage`."""
        started = time.perf_counter()
        try:
            yield
        finally:
            self[stage] = self.get(stage, 0.0) + time.perf_counter() - started

    def add(self, times: Mapping[str, float]) -> None:
        """Add another record of stages (one image's) to these."""
        for stage, seconds in times.items():
            self[stage] = self.get(stage, 0.0) + seconds

    def ms_per(self, count: int) -> dict[str, float]:
        """Milliseconds per item of each stage, over `count` items."""
        return {stage: round(seconds / max(count, 1) * 1000, 2) for stage, seconds in self.items()}
