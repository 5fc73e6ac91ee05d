"""What --engine ray asks of a Ray cluster (docs/architecture.md, "Ray"): joining or starting one, how many
replicas and what each reserves, refused in one line when the cluster cannot hold them; and
Ray's own lines kept off the terminal."""
from __future__ import annotations

import contextlib
import logging
import math
import os
import socket
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from ..choices import Backend
from ..errors import EnvironmentProblem, UsageError

INSTALL_HINT = "install it: pip install 'yedge[ray]' (in a checkout: pip install -e '.[ray]')"
CLUSTER_HINT = "start it with `ray start --head`, or fix --ray-address / RAY_ADDRESS"
# Ray 2.59 and later turn token authentication on for `ray start --head` (docs/commands.md, --engine ray).
AUTH_HINT = ("set RAY_AUTH_MODE=token here too, with the cluster's token in ~/.ray/auth_token or RAY_AUTH_TOKEN "
             "(`ray get-auth-token` on the head prints it)")
# What Ray reports among resources but a replica does not reserve here.
RAY_MEMORY = ("memory", "object_store_memory")


def parse_resources(text: str | None) -> dict[str, float]:
    """`NPU=1,CPU=2` → {"NPU": 1.0, "CPU": 2.0}; each name once, each amount a finite number ≥ 0,
    and no memory (Ray takes it apart from the resources)."""
    resources: dict[str, float] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        name, _, amount = (piece.strip() for piece in part.partition("="))
        try:
            value = float(amount)
        except ValueError:
            value = math.nan
        if not name or not math.isfinite(value) or value < 0:
            problem = f"{part.strip()!r} is not NAME=AMOUNT with a number ≥ 0"
        elif name in resources:
            problem = f"{name} is given twice"
        elif name in RAY_MEMORY:
            problem = f"{name} is not a resource a replica reserves here"
        else:
            resources[name] = value
            continue
        raise UsageError(f"--replica-resources {text!r}: {problem}",
                         hint="e.g. --replica-resources NPU=1 or GPU=1,CPU=2 (names as Ray's: CPU, GPU, NPU …)")
    return resources


@dataclass(frozen=True)
class RaySettings:
    """--ray-address (None: RAY_ADDRESS, else a local cluster this command starts and stops),
    --replicas (None: one per NPU or GPU of the cluster for those backends, else 1) and
    --replica-resources (what each replica reserves; by default one NPU for ascend, one GPU for
    cuda, one CPU otherwise)."""

    address: str | None = None
    replicas: int | None = None
    resources: dict[str, float] = field(default_factory=dict)


def accelerator(backend: str, device: str) -> str | None:
    """The Ray resource a replica of this backend runs on: NPU, GPU, or None (the CPU)."""
    if backend == Backend.ASCEND.value:
        return "NPU"
    return "GPU" if device.startswith("cuda") else None


def replica_device(backend: str, device: str) -> str:
    """The device a replica opens: Ray makes its NPU (ASCEND_RT_VISIBLE_DEVICES) or GPU
    (CUDA_VISIBLE_DEVICES) the only one the process sees, so that is device 0 or plain cuda."""
    kind = accelerator(backend, device)
    if kind == "NPU":
        return "0"
    return "cuda" if kind == "GPU" else device


def connect(address: str | None, shared_cpus: int = 0, log: Path | None = None) -> bool:
    """ray.init on the cluster at `address` (else RAY_ADDRESS, else a new local one); True when
    this process started the cluster (and so stops it). A new local cluster counts this
    machine's CPUs plus `shared_cpus`: what CPU replicas reserve while the read and host tasks
    share their cores, as the local engine's processes do (on 2 cores, 100 images: 202 → 150 ms
    per image more than --engine local, bench/ray_scaling.py overhead). A cluster that cannot be
    reached is one line, not Ray's retries and traceback; one that refuses this process's token
    says so (Ray's own lines, which name it, go to `log` under native_stderr_to)."""
    try:
        import ray
    except ImportError:
        raise EnvironmentProblem("--engine ray needs Ray, which is not installed", hint=INSTALL_HINT) from None
    address = address or os.environ.get("RAY_ADDRESS") or None
    if ray.is_initialized():
        return False
    if address is not None and address != "auto" and "://" not in address:
        host, _, port = address.rpartition(":")
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise UsageError(f"--ray-address {address}: not HOST:PORT",
                             hint="e.g. --ray-address 10.0.0.5:6379 (the head's GCS port), or ray://HOST:10001")
        try:
            socket.create_connection((host or "127.0.0.1", int(port)), timeout=5).close()
        except OSError as exc:
            raise EnvironmentProblem(f"cannot reach the Ray cluster at {address} ({exc})", hint=CLUSTER_HINT) from None
    logged = log.stat().st_size if log is not None and log.exists() else 0
    try:
        # "local": a new cluster of this command's own, even where one runs on this machine
        ray.init(address=address or "local", include_dashboard=False, log_to_driver=False,
                 logging_level=logging.ERROR, num_cpus=None if address else (os.cpu_count() or 1) + shared_cpus)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        if log is not None and _refused_token(log, logged):
            raise EnvironmentProblem(
                f"the Ray cluster at {address} requires token authentication, and this process has no "
                f"token it accepts", hint=AUTH_HINT) from None
        raise EnvironmentProblem(f"cannot join the Ray cluster at {address or 'a new local cluster'} "
                                 f"({str(exc).splitlines()[0][:160]})", hint=CLUSTER_HINT) from None
    return address is None


def _refused_token(log: Path, start: int) -> bool:
    """Did Ray's lines written to `log` since byte `start` say the cluster refused our token?"""
    with open(log, "rb") as handle:
        handle.seek(start)
        return b"InvalidAuthToken" in handle.read()


def cluster_resources() -> tuple[dict[str, float], list[dict[str, float]]]:
    """The cluster's resources in all, and each live node's."""
    import ray

    nodes = [{k: float(v) for k, v in n["Resources"].items() if not k.startswith("node:")}
             for n in ray.nodes() if n.get("Alive")]
    totals: dict[str, float] = {}
    for node in nodes:
        for name, value in node.items():
            totals[name] = totals.get(name, 0.0) + value
    return totals, nodes


def describe(resources: dict[str, float]) -> str:
    """NAME=AMOUNT, …: what a replica asks or a cluster has (its memory left out)."""
    shown = {k: v for k, v in resources.items() if k not in RAY_MEMORY}
    return ", ".join(f"{k}={v:g}" for k, v in sorted(shown.items())) or "nothing"


def plan_replicas(settings: RaySettings, backend: str, device: str, totals: dict[str, float],
                  nodes: list[dict[str, float]]) -> tuple[int, dict[str, float]]:
    """How many replicas, and what each reserves; refused (instead of a run that waits forever)
    when no node can hold one replica, or the replicas would take every CPU the read and host
    tasks need."""
    kind = accelerator(backend, device)
    resources = dict(settings.resources) or ({kind: 1.0} if kind else {"CPU": 1.0})
    resources.setdefault("CPU", 0.0 if kind else 1.0)
    if not any(all(node.get(k, 0.0) >= v for k, v in resources.items()) for node in nodes):
        raise EnvironmentProblem(f"no node of the Ray cluster has {describe(resources)} for a replica "
                                 f"(the cluster has {describe(totals)})",
                                 hint="start nodes with that resource (ray start --resources ...), or pass "
                                      "other --replica-resources")
    replicas = settings.replicas or (int(totals.get(kind, 0)) if kind else 0) or 1
    for name, amount in resources.items():
        if amount and replicas * amount > totals.get(name, 0.0):
            raise EnvironmentProblem(f"{replicas_phrase(replicas)} of {name}={amount:g} need more than the cluster's "
                                     f"{totals.get(name, 0.0):g} {name}", hint="pass fewer --replicas")
    if replicas * resources["CPU"] > totals.get("CPU", 0.0) - 1:
        raise EnvironmentProblem(f"{replicas_phrase(replicas)} of CPU={resources['CPU']:g} leave none of the cluster's "
                                 f"{totals.get('CPU', 0.0):g} CPUs to the read and host tasks",
                                 hint="pass fewer --replicas, or --replica-resources CPU=0.5")
    return replicas, resources


def replicas_phrase(count: int) -> str:
    return f"{count} replica{'s' if count != 1 else ''}"


@contextlib.contextmanager
def native_stderr_to(log_path: Path) -> Iterator[None]:
    """Ray's C++ core worker in this process writes its own lines to file descriptor 2 (warnings
    and errors of the cluster, not yedge's). While Ray runs, descriptor 2 goes to `log_path`;
    Python's sys.stderr (yedge's messages and progress bar) is pointed at the terminal it had."""
    sys.stderr.flush()
    log_path.parent.mkdir(parents=True, exist_ok=True)
    saved = os.dup(2)
    previous, terminal = sys.stderr, None
    with contextlib.suppress(AttributeError, ValueError, OSError):
        if sys.stderr.fileno() == 2:  # not when something else already captures sys.stderr
            terminal = os.fdopen(os.dup(saved), "w", buffering=1, encoding=sys.stderr.encoding or "utf-8",
                                 errors="replace")
            sys.stderr = terminal
    log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(log, 2)
    os.close(log)
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        sys.stderr = previous
        if terminal is not None:
            terminal.close()


def remote_arguments(resources: dict[str, float]) -> dict:
    """Ray's options for a replica: CPUs and GPUs by their own names, the rest (NPU) as resources."""
    others = {k: v for k, v in resources.items() if k not in ("CPU", "GPU")}
    arguments: dict = {"num_cpus": resources.get("CPU", 0.0), "num_gpus": resources.get("GPU", 0.0)}
    if others:
        arguments["resources"] = others
    return arguments


def absolute_source(source: str) -> str:
    """A file's absolute path; a camera index or stream URL as it is."""
    return source if source.isdigit() or "://" in source else os.path.abspath(source)
