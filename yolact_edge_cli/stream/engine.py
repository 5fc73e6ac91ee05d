"""One engine protocol for every command that runs a model over many inputs (predict, streaming
eval, bench --stream), and the factory that picks the engine of --engine."""
from __future__ import annotations

import functools
from collections.abc import Callable, Generator, Iterable
from contextlib import AbstractContextManager
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from ..backends import ModelInfo
from ..choices import AisBenchMode, Backend
from ..choices import Engine as EngineChoice
from ..errors import UsageError
from .items import Prediction, Unit
from .stages import HostT, SessionRecipe

if TYPE_CHECKING:
    from ..resolve import ModelChoice
    from ..workspace import Workspace
    from .ray_cluster import RaySettings


class Run(Protocol[HostT]):
    """An engine opened on a model: what the model takes (`info`), where it runs (`device`),
    the batch it runs, the host part its outputs get (`host`), and its predictions for any
    sources, in order."""

    info: ModelInfo
    device: str
    batch_size: int
    host: HostT

    def predictions(self, units: Iterable[Unit]) -> Generator[Prediction, None, None]: ...


class Engine(Protocol):
    """Opens its replicas' sessions itself from a picklable recipe; `host_for` gives the host
    part for the model's outputs, or None for none (and refuses a mismatch) before any image
    runs."""

    @property
    def where(self) -> str: ...

    def open(self, recipe: SessionRecipe,
             host_for: Callable[[ModelInfo], HostT]) -> AbstractContextManager[Run[HostT]]: ...


def engine_for(ws: Workspace, engine: str, ray: RaySettings | None = None, *, backend: str, device: str,
               workers: int = 1, keep_images: bool = False) -> Engine:
    """The engine of --engine: local (one replica in this process, or one per NPU of --device
    0,1), or ray (the replicas in Ray's actors; the same results)."""
    from ..resolve import in_process, parse_devices

    if engine == EngineChoice.RAY.value:
        from .ray_cluster import RaySettings, accelerator
        from .ray_engine import RayEngine

        if accelerator(backend, device) == "NPU" and device != "cpu":
            raise UsageError(f"--device {device}: with --engine ray, Ray gives each replica its NPU",
                             hint="drop --device (--replicas N for how many NPUs)")
        return RayEngine(ray or RaySettings(), keep_images, log=ws.log("ray"))
    from .local import LocalEngine

    devices = tuple(str(d) for d in parse_devices(device)) if backend == Backend.ASCEND.value else ()
    if len(devices) > 1:
        from ..ascend.aisbench import resolve_mode

        resolve_mode(AisBenchMode.API.value)  # says here, once, when ais_bench's API cannot load
        return LocalEngine(workers, keep_images, devices=devices)
    return LocalEngine(workers, keep_images, around_session=functools.partial(in_process, ws, backend))


def recipe_for(ws: Workspace, choice: ModelChoice, device: str, batch_size: int | None = None,
               keyframe_interval: int | None = None, compiled: bool = False) -> SessionRecipe:
    """How each replica opens the chosen model: ais_bench's own lines, in a replica's process,
    go to the workspace's log; a video model keeps a keyframe every `keyframe_interval` frames."""
    log: Path | None = ws.log("ais_bench_api") if choice.backend == Backend.ASCEND.value else None
    return SessionRecipe(choice.absolute(), device, batch_size, log, keyframe_interval, compiled)
