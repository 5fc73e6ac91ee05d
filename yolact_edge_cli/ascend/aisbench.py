"""Driving ais_bench (docs/ascend.md §1): its Python API in-process when importable,
else `python3 -m ais_bench`; its own constraints checked first so users get a clear message
instead of an ais_bench traceback; its console summary parsed."""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

from ..choices import AisBenchMode
from ..errors import EnvironmentProblem, InputError, UsageError

_SAFE_PATH = re.compile(r"^[A-Za-z0-9_/.\-]+$")
_SAFE_NAME = re.compile(r"^[A-Za-z0-9_.\-]+$")
# Linux refuses a single argument longer than MAX_ARG_STRLEN (128 KiB); a comma-joined --input
# stays well below it (docs/ascend.md §1.1).
MAX_ARGUMENT_BYTES = 100 * 1024
PRIVATE_FOLDER_MODE = 0o750  # what ais_bench sets on --output, and accepts
_TIMES = re.compile(r"(NPU_compute_time|H2D_latency|D2H_latency) \(ms\): min = (\S+), max = (\S+), "
                    r"mean = (\S+), median = (\S+), percentile\((\d+)%\) = (\S+)")
_THROUGHPUT = re.compile(r"throughput 1000\*batchsize\.mean\(([^)]*)\)/NPU_compute_time\.mean\(([^)]*)\): "
                         r"([-+0-9.eE]+)")
INSTALL_HINT = ("install ais_bench and aclruntime (pip3 install aclruntime-*.whl ais_bench-*.whl) "
                "after sourcing CANN's set_env.sh")


SET_ENV_HINT = ("source CANN's set_env.sh first (e.g. `. /usr/local/Ascend/ascend-toolkit/set_env.sh`), "
                "then rerun")
NOT_INSTALLED = "not installed"


def api_problem() -> str | None:
    """Why ais_bench's Python API cannot be used here, or None. Importing it loads aclruntime, an
    extension that needs CANN's libraries on LD_LIBRARY_PATH (set_env.sh), so it is imported,
    not just looked up."""
    try:
        if importlib.util.find_spec("ais_bench.infer.interface") is None:
            return NOT_INSTALLED
        importlib.import_module("ais_bench.infer.interface")
    except ModuleNotFoundError:
        return NOT_INSTALLED
    except (ImportError, OSError, RuntimeError) as exc:
        return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:160]
    return None


def api_available() -> bool:
    return api_problem() is None


def resolve_mode(mode: str) -> str:
    """api or cli. `auto` takes the API when it loads, the CLI when ais_bench's API is not
    installed; an installed API that cannot load means CANN's environment is missing, which the
    CLI would meet as well, so that is said at once."""
    if mode not in AisBenchMode.values():
        raise UsageError(f"unknown ais_bench mode {mode!r}", hint="use --ais-bench auto, api or cli")
    if mode == AisBenchMode.CLI.value:
        return mode
    problem = api_problem()
    if problem is None:
        return AisBenchMode.API.value
    if problem == NOT_INSTALLED:
        if mode == AisBenchMode.AUTO.value:
            return AisBenchMode.CLI.value
        raise EnvironmentProblem("ais_bench's Python API is not installed", hint=INSTALL_HINT)
    raise EnvironmentProblem(f"ais_bench's Python API cannot load: {problem}", hint=SET_ENV_HINT)


def check_path(path: Path, what: str) -> None:
    """ais_bench's path security rules: [A-Za-z0-9_/.-] only, no symlinks, not writable by
    group or others."""
    absolute = str(Path(path).absolute())
    if not _SAFE_PATH.match(absolute):
        raise InputError(f"ais_bench refuses this {what} path (only A-Z a-z 0-9 _ / . - are allowed)",
                         path=absolute, hint="move the workspace to a path without spaces or other characters")
    if Path(path).is_symlink():
        raise InputError(f"ais_bench refuses a symlinked {what}", path=absolute,
                         hint="pass the real path (readlink -f)")
    if Path(path).exists() and os.stat(path).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise InputError(f"ais_bench refuses a {what} writable by group or others", path=absolute,
                         hint=f"chmod go-w '{absolute}'")


_quiet_lock = threading.Lock()
_quiet_state: dict = {"depth": 0, "saved": None}


@contextlib.contextmanager
def quiet_stdout(log_path: Path) -> Iterator[None]:
    """aclruntime prints [INFO] lines on the process's C-level stdout (at init, load, unload and
    every dynamic-batch infer). While its API is in use they go to `log_path`, so stdout keeps
    only yedge's results (`--json` stays JSON). Nested and threaded uses share one redirect."""
    with _quiet_lock:
        if _quiet_state["depth"] == 0:
            sys.stdout.flush()
            log_path.parent.mkdir(parents=True, exist_ok=True)
            log = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            _quiet_state["saved"] = os.dup(1)
            os.dup2(log, 1)
            os.close(log)
        _quiet_state["depth"] += 1
    try:
        yield
    finally:
        with _quiet_lock:
            _quiet_state["depth"] -= 1
            if _quiet_state["depth"] == 0:
                os.dup2(_quiet_state["saved"], 1)
                os.close(_quiet_state["saved"])


def check_name(name: str, option: str) -> None:
    """A name ais_bench will see as part of a path (--output_dirname): its characters only."""
    if not _SAFE_NAME.match(name):
        raise UsageError(f"{option} {name!r}: ais_bench accepts only A-Z a-z 0-9 _ . - in it",
                         hint=f"pick another {option} name")


def private_folder(path: Path) -> Path:
    """A folder ais_bench accepts as --output (owner-only writable, safe characters), made so
    whatever the umask; ais_bench re-modes --output itself, so it is never a folder of the user's."""
    path.mkdir(parents=True, exist_ok=True)
    os.chmod(path, PRIVATE_FOLDER_MODE)
    check_path(path, "output folder")
    return path


def input_chunks(files: list[Path], per_batch: int, limit: int | None = None) -> list[list[Path]]:
    """The files split into runs whose comma-joined --input stays under `limit` bytes (default
    MAX_ARGUMENT_BYTES), each a whole number of batches, so only the very last batch is padded,
    as in a single run."""
    limit = limit or MAX_ARGUMENT_BYTES
    chunks: list[list[Path]] = []
    current: list[Path] = []
    size = 0
    for start in range(0, len(files), per_batch):
        batch = files[start:start + per_batch]
        extra = sum(len(os.fsencode(str(p))) + 1 for p in batch)
        if current and size + extra > limit:
            chunks.append(current)
            current, size = [], 0
        current += batch
        size += extra
    if current:
        chunks.append(current)
    return chunks


def check_model(om: Path) -> None:
    if Path(om).suffix != ".om":
        raise InputError("ais_bench only runs .om models", path=om, hint="run `yedge convert` first")
    if not Path(om).is_file():
        raise InputError(".om model not found", path=om, hint="run `yedge convert` first")
    check_path(om, "model")


def check_inputs(folder: Path, files: list[Path]) -> None:
    check_path(folder, "input folder")
    for path in files:
        check_path(path, "input file")


def python_for_cli() -> str:
    """The interpreter for `python3 -m ais_bench`: ours if it has ais_bench, else python3 on PATH."""
    if importlib.util.find_spec("ais_bench") is not None:
        return sys.executable
    return shutil.which("python3") or sys.executable


def cli_argv(om: Path, *, inputs: list[Path] | Path | None = None, output: Path | None = None,
             dirname: str | None = None, device: int = 0, loop: int | None = None,
             batch_size: int | None = None, dym_batch: int | None = None,
             warmup: int | None = None, all_summary: bool = False) -> list[str]:
    argv = [python_for_cli(), "-m", "ais_bench", "--model", str(om)]
    if inputs is not None:
        value = str(inputs) if isinstance(inputs, Path) else ",".join(str(p) for p in inputs)
        argv += ["--input", value]
    if output is not None:
        argv += ["--output", str(output)]
    if dirname is not None:
        argv += ["--output_dirname", dirname]
    argv += ["--device", str(device)]
    if loop is not None:
        argv += ["--loop", str(loop)]
    if batch_size is not None:
        argv += ["--batchsize", str(batch_size)]
    if dym_batch is not None:
        argv += ["--dymBatch", str(dym_batch)]
    if warmup is not None:
        argv += ["--warmup_count", str(warmup)]
    if all_summary:  # H2D and D2H lines too
        argv += ["--display_all_summary", "1"]
    return argv


# Run by the interpreter that has ais_bench (python_for_cli): loads the .om on one NPU and prints
# ais_bench's description of its tensors on one marked line (aclruntime's own lines around it).
_DESCRIBE = """
import json, sys
from ais_bench.infer.interface import InferSession
session = InferSession(int(sys.argv[2]), sys.argv[1])
def desc(t):
    return {"name": t.name, "datatype": str(t.datatype), "shape": [int(d) for d in t.shape]}
print("%s" + json.dumps({"inputs": [desc(t) for t in session.get_inputs()],
                         "outputs": [desc(t) for t in session.get_outputs()]}), flush=True)
session.free_resource()
"""
_DESCRIPTION_MARK = "YEDGE_MODEL_DESCRIPTION "


def describe(om: Path, device: int, log_path: Path):
    """What an .om takes and gives — its batch static or dynamic, input dtype and shape,
    outputs — from ais_bench's own model description, so the CLI is driven by the .om itself
    (a static .om refuses --dymBatch; a file of the right size but another dtype would be
    read silently as the .om's dtype)."""
    from types import SimpleNamespace

    from ..backends.ascend import model_info

    stdout = run_cli([python_for_cli(), "-c", _DESCRIBE % _DESCRIPTION_MARK, str(Path(om).absolute()),
                      str(device)], cwd=log_path.parent, log_path=log_path)
    line = next((line for line in stdout.splitlines() if line.startswith(_DESCRIPTION_MARK)), None)
    if line is None:
        raise EnvironmentProblem("ais_bench gave no description of the model", path=log_path, hint="read the log")
    tensors = json.loads(line[len(_DESCRIPTION_MARK):])
    return model_info([SimpleNamespace(**t) for t in tensors["inputs"]],
                      [SimpleNamespace(**t) for t in tensors["outputs"]])


def run_cli(argv: list[str], cwd: Path, log_path: Path) -> str:
    """Run `python3 -m ais_bench`, keep its stdout in a log, and fail clearly on a non-zero exit."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        proc = subprocess.run(argv, cwd=cwd, capture_output=True, text=True, errors="replace")
    except OSError as exc:
        raise EnvironmentProblem(f"could not run ais_bench ({exc.strerror})", hint=INSTALL_HINT) from None
    log_path.write_text(" ".join(argv) + "\n" + proc.stdout + proc.stderr)
    if proc.returncode != 0:
        text = (proc.stdout + proc.stderr).strip().splitlines()
        if any("No module named ais_bench" in line for line in text):
            raise EnvironmentProblem("ais_bench is not installed for python3", hint=INSTALL_HINT)
        errors = [line for line in text if "[ERROR]" in line or "Error" in line] or text[-1:] or ["no output"]
        raise EnvironmentProblem(f"ais_bench failed (exit {proc.returncode}): {errors[-1][:200]}",
                                 path=log_path, hint="read the log")
    return proc.stdout


def parse_summary(stdout: str) -> dict:
    """The performance block ais_bench prints: timing stats (ms) and throughput."""
    out: dict = {}
    for match in _TIMES.finditer(stdout):
        name, lo, hi, mean, median, pct, p = match.groups()
        out[name] = {"min": float(lo), "max": float(hi), "mean": float(mean), "median": float(median),
                     f"percentile({pct}%)": float(p)}
    throughput = _THROUGHPUT.search(stdout)
    if throughput:
        out["batchsize"] = float(throughput.group(1))
        out["throughput"] = float(throughput.group(3))
    if "NPU_compute_time" not in out:
        raise EnvironmentProblem("ais_bench printed no NPU_compute_time summary",
                                 hint="check the ais_bench log for errors")
    return out
