"""Running grouped batches through a session and writing each real sample's outputs under
ais_bench's names (docs/ascend.md §1.3): in this process, or spread over several devices with
one worker process per device. Processes, not threads: aclruntime's calls never release the
GIL, so NPUs driven from threads of one process run one after another (docs/ascend.md §1.5)."""
from __future__ import annotations

import contextlib
from collections.abc import Callable
from concurrent.futures import FIRST_COMPLETED, wait
from pathlib import Path

import numpy as np

from .backends import ModelInfo, RunTimes, Session, timed_run
from .data import binio
from .data.preprocess import sample_shape
from .parallel import process_pool
from .stream.stages import SessionRecipe
from .workspace import atomic_path


def split_contiguous(items: list, parts: int) -> list[list]:
    """Contiguous, nearly equal shares (one per device)."""
    size, extra = divmod(len(items), parts)
    bounds = [i * size + min(i, extra) for i in range(parts + 1)]
    return [items[bounds[i]:bounds[i + 1]] for i in range(parts)]


def run_batch(session: Session, batch: binio.Batch, run_dir: Path, input_dtype: str,
              input_layout: str) -> RunTimes:
    """One batch through the session; each real sample's outputs written atomically, the
    padding's dropped."""
    data = binio.read_batch(batch, np.dtype(input_dtype), sample_shape(input_layout))
    outputs, times = timed_run(session, data)
    for k, output in enumerate(outputs):
        for j, part in enumerate(np.array_split(output, batch.size, axis=0)[: len(batch.files)]):
            with atomic_path(binio.output_path(run_dir, batch.files[j], k)) as tmp:
                tmp.write_bytes(np.ascontiguousarray(part).data)
    return times


def _worker_info(recipe: SessionRecipe) -> ModelInfo:
    return recipe.open_in_worker().info


def _worker_batch(recipe: SessionRecipe, batch: binio.Batch, run_dir: Path, input_dtype: str,
                  input_layout: str) -> RunTimes:
    return run_batch(recipe.open_in_worker(), batch, run_dir, input_dtype, input_layout)


class DeviceWorkers:
    """One worker process per device, each opening its own session of the recipe's model once.
    Ctrl-C or a failure on one device cancels the batches not yet started everywhere; a batch's
    outputs are whole or absent."""

    def __init__(self, recipe: SessionRecipe, devices: list[str]):
        self.recipes = [recipe.on(device) for device in devices]
        self._stack = contextlib.ExitStack()
        self._pools: list = []

    def __enter__(self) -> DeviceWorkers:
        self._pools = [self._stack.enter_context(process_pool(1)) for _ in self.recipes]
        return self

    def __exit__(self, *exc) -> None:
        self._stack.__exit__(*exc)

    def info(self) -> ModelInfo:
        """What the model takes, as the first device's session reads it."""
        return self._pools[0].submit(_worker_info, self.recipes[0]).result()

    def run(self, batches: list[binio.Batch], run_dir: Path, input_dtype: str, input_layout: str,
            advance: Callable[[int], None]) -> list[RunTimes]:
        """The batches in contiguous shares, one per device, all devices at once."""
        run_dir.mkdir(parents=True, exist_ok=True)
        futures = {}
        for pool, recipe, share in zip(self._pools, self.recipes, split_contiguous(batches, len(self.recipes))):
            for batch in share:
                future = pool.submit(_worker_batch, recipe, batch, run_dir, input_dtype, input_layout)
                futures[future] = batch
        times: list[RunTimes] = []
        pending = set(futures)
        while pending:
            done, pending = wait(pending, return_when=FIRST_COMPLETED)
            for future in done:
                times.append(future.result())  # a device's failure is raised here, the rest cancelled
                advance(len(futures[future].files))
        return times
