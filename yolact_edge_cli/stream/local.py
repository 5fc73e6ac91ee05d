"""The local engine: items → decode + preprocess in worker processes → batches → the replicas'
sessions → host post-processing in worker processes → the caller, in source order, with no file
in between (docs/architecture.md, "Streaming").

One thread drives it: the worker pools run while a session computes, and the session runs while
the pools work, so the stages overlap; each stage keeps at most `window` items in flight, so
memory is bounded by the windows, not by the number of images. One replica runs its session in
this process; several (one per NPU of --device 0,1) run one worker process each — processes, not
threads: aclruntime's calls never release the GIL (docs/ascend.md §1.5).
"""
from __future__ import annotations

import contextlib
import dataclasses
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass
from typing import Generic

from ..backends import ModelInfo, Session
from ..parallel import process_pool
from .items import Prediction, Unit, numbered
from .schedule import Group, Schedule
from .stages import HostT, Pair, PrepareSpec, SessionRecipe, batching, behind_inference, post, prepare_item, run_group


def _warm() -> None:
    """Nothing: submitted once per worker so the pool starts its processes now."""


def _ordered(pool, function: Callable, tasks: Iterable, window: int) -> Iterator:
    """`function` over `tasks` in the pool, results in task order, at most `window` in flight."""
    pending: deque[Future] = deque()
    for task in tasks:
        pending.append(pool.submit(function, *task))
        if len(pending) >= window:
            yield pending.popleft().result()
    while pending:
        yield pending.popleft().result()


def _replica_describe(recipe: SessionRecipe) -> tuple[ModelInfo, str]:
    session = recipe.open_in_worker()
    return session.info, session.device


def _replica_run(recipe: SessionRecipe, group: list[Pair], batch_size: int) -> list:
    return run_group(recipe.open_in_worker(), group, batch_size)


class _InProcess:
    """A replica whose session runs in this process: a group runs when it is sent."""

    def __init__(self, session: Session):
        self.session = session

    def send(self, group: list[Pair], batch_size: int) -> Future:
        done: Future = Future()
        done.set_result(run_group(self.session, group, batch_size))
        return done


class _InWorker:
    """A replica in a worker process of its own, its session opened there once. The decoded
    pictures stay here (they are only drawn here)."""

    def __init__(self, pool, recipe: SessionRecipe):
        self.pool, self.recipe = pool, recipe

    def describe(self) -> Future:
        return self.pool.submit(_replica_describe, self.recipe)

    def send(self, group: list[Pair], batch_size: int) -> Future:
        bare = [(dataclasses.replace(prediction, image=None), tensor) for prediction, tensor in group]
        return self.pool.submit(_replica_run, self.recipe, bare, batch_size)


@dataclass(frozen=True)
class LocalEngine:
    """`workers` per pool (decode, host); `devices`: one replica per device, each in a worker
    process (two or more); none: one replica on the recipe's device in this process, inside
    `around_session` (what running it here needs: resolve.in_process)."""

    workers: int = 1
    keep_images: bool = False
    window: int = 0  # items in flight per stage; 0: four batches' worth per replica, at least two per worker
    devices: tuple[str, ...] = ()
    around_session: Callable[[], contextlib.AbstractContextManager] | None = None

    @property
    def where(self) -> str:
        return f"{self.workers} workers per stage"

    @contextlib.contextmanager
    def open(self, recipe: SessionRecipe,
             host_for: Callable[[ModelInfo], HostT]) -> Iterator[LocalRun[HostT]]:
        """The pools start before a session opens, so no worker is forked from a process whose
        runtime threads are already running; what the model takes (dtype, layout, batch) and
        the host part are read from the first replica's session."""
        with contextlib.ExitStack() as stack:
            prep_pool = stack.enter_context(process_pool(self.workers, behind_inference))
            host_pool = stack.enter_context(process_pool(self.workers, behind_inference))
            separate = self.devices if len(self.devices) > 1 else ()
            replica_pools = [stack.enter_context(process_pool(1)) for _ in separate]
            for pool, count in ((prep_pool, self.workers), (host_pool, self.workers), *((p, 1) for p in replica_pools)):
                for started in [pool.submit(_warm) for _ in range(count)]:
                    started.result()
            replicas: list[_InProcess | _InWorker]
            if replica_pools:
                workers = [_InWorker(pool, recipe.on(device)) for pool, device in zip(replica_pools, self.devices)]
                described = [w.describe() for w in workers]
                info, _ = described[0].result()
                device = ", ".join(d.result()[1] for d in described)
                replicas = list(workers)
            else:
                if self.around_session is not None:
                    stack.enter_context(self.around_session())
                session = recipe.open()
                stack.callback(session.close)
                info, device, replicas = session.info, session.device, [_InProcess(session)]
            host = host_for(info)
            batch_size, spec = batching(info, recipe.batch_size, self.keep_images)
            window = self.window or max(4 * batch_size * len(replicas), 2 * self.workers, 2)
            yield LocalRun(info, device, host, replicas, batch_size, spec, window, prep_pool, host_pool)


@dataclass
class LocalRun(Generic[HostT]):
    info: ModelInfo
    device: str  # what the sessions opened on (an NPU's id, say), the replicas' joined
    host: HostT
    replicas: list
    batch_size: int
    spec: PrepareSpec
    window: int
    prep_pool: ProcessPoolExecutor
    host_pool: ProcessPoolExecutor

    def predictions(self, units: Iterable[Unit]) -> Generator[Prediction, None, None]:
        """Predictions for `units` (for a video: each of its frames), in their order."""
        prepared = _ordered(self.prep_pool, prepare_item, ((item, self.spec) for item in numbered(units)),
                            self.window)
        schedule = Schedule(len(self.replicas), self.batch_size)
        slots: deque[tuple[Group, int]] = deque()
        sent: deque[Group] = deque()  # groups sent whose host work is not yet submitted
        for pair in prepared:
            group, place, full = schedule.add(pair[0].item.unit, pair, pair[1] is not None)
            slots.append((group, place))
            if full:
                sent.append(self._send(group))
            self._post_finished(sent)
            while slots and (len(slots) > self.window or self._ready(*slots[0])):
                yield self._take(schedule, sent, *slots.popleft())
        sent.extend(self._send(group) for group in schedule.rest())
        while slots:
            yield self._take(schedule, sent, *slots.popleft())

    def _send(self, group: Group) -> Group:
        group.handle = [self.replicas[group.replica].send(group.members, self.batch_size), None]
        return group

    def _post_finished(self, sent: deque[Group]) -> None:
        """Host work for every group whose batch has run."""
        while sent and sent[0].handle[0].done():
            group = sent.popleft()
            ran = group.handle[0].result()
            group.handle[1] = [None if outputs is None or self.host is None else self.host_pool.submit(
                post, self.host, outputs, prediction.width, prediction.height) for prediction, outputs in ran]

    @staticmethod
    def _ready(group: Group, place: int) -> bool:
        if group.handle is None or group.handle[1] is None:
            return False
        future = group.handle[1][place]
        return future is None or future.done()

    def _take(self, schedule: Schedule, sent: deque[Group], group: Group, place: int) -> Prediction:
        """The prediction at `place` of `group`, waited for (its group sent first when still open)."""
        if group.handle is None:
            schedule.close(group)
            sent.append(self._send(group))
        while group.handle[1] is None:
            sent[0].handle[0].result()
            self._post_finished(sent)
        prediction, outputs = group.handle[0].result()[place]
        given = group.members[place][0]
        prediction.image, prediction.replica = given.image, group.replica
        future = group.handle[1][place]
        if self.host is None:
            prediction.outputs = outputs
        elif future is not None:
            prediction.detections, host_times = future.result()
            prediction.times.update(host_times)
        schedule.done(group)
        return prediction
