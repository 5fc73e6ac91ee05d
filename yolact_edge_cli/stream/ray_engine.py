"""--engine ray: the local engine's stages on a Ray cluster, so that one command runs on a laptop
(a local Ray cluster) or on many hosts (docs/architecture.md, "Ray"):

  a source (an image, a video by path) → read + preprocess      a Ray task (a video: a
                                                                 streaming one, frame by frame)
  → inference                                                    `replicas` actors, each opening
                                                                 its backend session once
  → host post-processing                                         a Ray task per item
  → the caller, in source order                                  this process

The functions the stages run are the local engine's own, and the same schedule sends every frame
of a video, in order, to one replica, so the results are the same. Ray restarts a replica whose
process dies and retries its batches on it, and retries a task whose worker dies.
"""
from __future__ import annotations

import contextlib
import math
import os
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Generic

from ..backends import ModelInfo, Session
from ..errors import UsageError
from ..host import HostSpec
from .items import Frames, Prediction, Unit, items_of
from .ray_cluster import (
    RaySettings,
    absolute_source,
    accelerator,
    cluster_resources,
    connect,
    native_stderr_to,
    plan_replicas,
    remote_arguments,
    replica_device,
    replicas_phrase,
)
from .schedule import Group, Schedule
from .stages import WORKER_NICENESS, HostT, Pair, PrepareSpec, SessionRecipe, batching, finish, prepare_item, run_group

_niced = False


def _behind_replicas() -> None:
    """Once per Ray worker process that runs the read and host tasks: at the local pools'
    niceness, so a replica on the same cores is not kept waiting (docs/architecture.md, Streaming)."""
    global _niced
    if not _niced:
        os.nice(WORKER_NICENESS)
        _niced = True


def _read(unit: Unit, position: int, spec: PrepareSpec) -> Iterator[Pair]:
    """A source into prepared items: an image into one, a video into one per frame (and one that
    carries the error when it stopped early). Read at its absolute path (a task's folder is not
    the driver's), named in the results as the driver was given it (a Frames unit's frames are
    absolute paths already, each its own)."""
    _behind_replicas()
    given = unit.source
    whole = not isinstance(unit, Frames)
    for item in items_of(replace(unit, source=absolute_source(given)) if whole else unit):
        prediction, tensor = prepare_item(replace(item, unit=position), spec)
        if whole:
            prediction.item = replace(prediction.item, source=given)
        yield prediction, tensor


class Replica:
    """A model replica: it opens its session once, then runs groups as the local engine does."""

    def __init__(self, recipe: SessionRecipe):
        self.session: Session = recipe.open()

    def describe(self) -> ModelInfo:
        return self.session.info

    def run(self, batch_size: int, *group: Pair):
        done = run_group(self.session, list(group), batch_size)
        return done[0] if len(done) == 1 else tuple(done)


def _post(pair: tuple[Prediction, list | None], host: HostSpec | None) -> Prediction:
    _behind_replicas()
    return finish(*pair, host)


@dataclass(frozen=True)
class RayEngine:
    """The engine on a Ray cluster: the same arguments and results as stream.local.LocalEngine."""

    settings: RaySettings
    keep_images: bool = False
    log: Path | None = None  # where Ray's own lines on this process's stderr go

    @property
    def where(self) -> str:
        return "on Ray"

    def _cpu_replicas(self, backend: str, device: str) -> int:
        """The CPUs a new local cluster's CPU replicas reserve (none for NPU or GPU ones): CPU=1
        each unless --replica-resources says otherwise, given or not (one rule)."""
        if accelerator(backend, device):
            return 0
        return math.ceil((self.settings.replicas or 1) * self.settings.resources.get("CPU", 1.0))

    @contextlib.contextmanager
    def open(self, recipe: SessionRecipe,
             host_for: Callable[[ModelInfo], HostT]) -> Iterator[RayRun[HostT]]:
        backend, device = recipe.choice.backend or "", recipe.device
        cores = os.cpu_count() or 1
        cpus = self._cpu_replicas(backend, device)
        if not (self.settings.address or os.environ.get("RAY_ADDRESS")) and cpus > cores:
            raise UsageError(f"{replicas_phrase(self.settings.replicas or 1)} on the CPU reserve {cpus} "
                             f"CPUs; this machine has {cores}",
                             hint=f"pass --replicas {cores} or fewer (or --ray-address a larger cluster)")
        with contextlib.ExitStack() as stack:
            if self.log is not None:
                stack.enter_context(native_stderr_to(self.log))
            # first: it says when Ray is not installed
            started_here = connect(self.settings.address, cpus, self.log)
            import ray

            if started_here:
                stack.callback(ray.shutdown)
            totals, nodes = cluster_resources()
            count, resources = plan_replicas(self.settings, backend, device, totals, nodes)
            actor: Any = ray.remote(Replica).options(max_restarts=-1, max_task_retries=-1,
                                                     **remote_arguments(resources))
            replicas: list[Any] = [actor.remote(recipe.on(replica_device(backend, device))) for _ in range(count)]
            for replica in replicas:
                stack.callback(ray.kill, replica)
            info = ray.get(replicas[0].describe.remote())
            host = host_for(info)
            batch_size, spec = batching(info, recipe.batch_size, self.keep_images)
            if host is not None and host.weights is not None:
                host = replace(host, weights=absolute_source(host.weights))
            yield RayRun(info, device, host, replicas, batch_size, spec,
                         window=max(4 * batch_size * count, 8))


@dataclass
class RayRun(Generic[HostT]):
    info: ModelInfo
    device: str  # as given: each replica has its own
    host: HostT
    replicas: list
    batch_size: int
    spec: PrepareSpec
    window: int

    def predictions(self, units: Iterable[Unit]) -> Generator[Prediction, None, None]:
        """Sources are read a few ahead; each read streams its items to the schedule, whose
        groups go to their replicas; the results come back in source order."""
        import ray

        read = ray.remote(_read).options(_generator_backpressure_num_objects=self.window)
        post_task = ray.remote(_post)  # made once: Ray exports a function per ray.remote
        host: Any = ray.put(self.host)

        def post(pair) -> Any:
            return post_task.remote(pair, host)

        schedule = Schedule(len(self.replicas), self.batch_size)
        slots: deque[tuple[Group, int]] = deque()
        sources = enumerate(units)
        reading: deque[tuple[int, Any]] = deque()

        def read_next() -> None:
            for position, unit in sources:
                reading.append((position, read.remote(unit, position, self.spec)))
                return

        for _ in range(max(2, len(self.replicas))):
            read_next()
        index = 0
        while reading:
            position, items = reading.popleft()
            read_next()
            for pair in items:
                group, place, full = schedule.add(position, pair)
                slots.append((group, place))
                if full:
                    self._send(group, post)
                while len(slots) > self.window:
                    yield self._take(schedule, post, index, *slots.popleft())
                    index += 1
        for group in schedule.rest():
            self._send(group, post)
        while slots:
            yield self._take(schedule, post, index, *slots.popleft())
            index += 1

    def _send(self, group: Group, post: Callable) -> None:
        ran = self.replicas[group.replica].run.options(num_returns=len(group.members)).remote(
            self.batch_size, *group.members)
        group.handle = [post(pair) for pair in (ran if len(group.members) > 1 else [ran])]

    def _take(self, schedule: Schedule, post: Callable, index: int, group: Group, place: int) -> Prediction:
        import ray

        if group.handle is None:
            schedule.close(group)
            self._send(group, post)
        prediction = ray.get(group.handle[place])
        schedule.done(group)
        prediction.item = replace(prediction.item, index=index)
        prediction.replica = group.replica
        return prediction
