"""`yedge doctor`: what this machine can run, and what state the workspace is in — one line per
item with what to do about it."""
from __future__ import annotations

import importlib
import importlib.util
import os
import platform
import shutil
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

from ..data import binio
from ..errors import EXIT_ENVIRONMENT, EXIT_INPUT, EXIT_OK, YedgeError
from ..provenance import prepared_fingerprint, read_run
from ..records import STEP_RECORDS, ConvertRecord, ExportRecord, PrepRecord
from ..workspace import Workspace, sha256_file

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    area: str      # "environment", "precision", "ray", "ascend" or "workspace"
    name: str
    status: str    # ok, warn (optional or informational) or fail
    detail: str
    fix: str = ""


def _module(name: str, required: bool, fix: str) -> Check:
    try:
        module = importlib.import_module(name)
    except ImportError:
        return Check("environment", name, FAIL if required else WARN, "not installed", fix)
    return Check("environment", name, OK, getattr(module, "__version__", "installed"))


def environment() -> list[Check]:
    new_enough = sys.version_info >= (3, 10)
    checks = [Check("environment", "python", OK if new_enough else FAIL, platform.python_version(),
                    "" if new_enough else "use Python 3.10 or newer")]
    checks.append(_module("torch", True, "make install (pip install torch==2.13.0 on these machines)"))
    if checks[-1].status == OK:
        import torch

        cuda = torch.cuda.is_available()
        checks.append(Check("environment", "cuda", OK if cuda else WARN,
                            torch.cuda.get_device_name(0) if cuda else "not available (CPU only)",
                            "" if cuda else "for --device cuda install a CUDA build of torch on a GPU host"))
    checks.append(_module("onnx", True, "make install"))
    checks.append(_module("onnxruntime", True, "make install"))
    if checks[-1].status == OK:
        import onnxruntime

        checks[-1].detail += " (" + ", ".join(onnxruntime.get_available_providers()) + ")"
    checks.append(_module("pycocotools", True, "make install"))
    checks.append(_module("cv2", True, "pip install opencv-python-headless"))
    checks.append(_module("faster_coco_eval", False, "optional, for eval --fast-eval: pip install faster-coco-eval"))
    checks.append(_module("openvino", False, "optional, for --backend openvino: pip install 'yedge[openvino]'"))
    return checks + precisions()


def precisions() -> list[Check]:
    """The CPU's instructions that reduced precision uses, and which --precision each host
    backend runs here (precision.py's table, less what this CPU lacks)."""
    from ..choices import Backend
    from ..precision import cpu_isa, offered, runs_here

    isa = cpu_isa()
    fast_int8 = any(name in isa for name in ("AMX-INT8", "AVX-512 VNNI", "AVX-VNNI"))
    checks = [Check("precision", "cpu", OK if fast_int8 else WARN, ", ".join(isa) or "none of AVX2, VNNI, AMX",
                    "int8 runs without VNNI or AMX, only slower")]
    for backend in (Backend.ONNXRUNTIME.value, Backend.OPENVINO.value, Backend.TORCH.value):
        here = [p for p in offered(backend, "cpu") if runs_here(backend, "cpu", p)]
        lacking = [p for p in offered(backend, "cpu") if p not in here]
        checks.append(Check("precision", backend, OK, "cpu: " + ", ".join(here)
                            + (f" (not {', '.join(lacking)}: this CPU lacks the instructions)" if lacking else "")))
    return checks


def ray(address: str | None, log: Path) -> list[Check]:
    """--engine ray: Ray itself, and with an address (--ray-address, else RAY_ADDRESS) the
    cluster's live nodes and their resources."""
    from ..stream.ray_cluster import INSTALL_HINT

    checks = [_module("ray", False, f"optional, for --engine ray: {INSTALL_HINT}")]
    address = address or os.environ.get("RAY_ADDRESS")
    if checks[0].status != OK or not address:
        return checks
    import ray as ray_module

    from ..stream.ray_cluster import cluster_resources, connect, describe, native_stderr_to

    with native_stderr_to(log):  # Ray's own retry lines go to the log
        try:
            connect(address, log=log)
        except YedgeError as exc:
            return checks + [Check("ray", "cluster", FAIL, exc.message, exc.hint or "")]
        try:
            totals, nodes = cluster_resources()
        finally:
            ray_module.shutdown()
    return checks + [Check("ray", "cluster", OK, f"{address}: {len(nodes)} node(s), {describe(totals)}")]


def ascend() -> list[Check]:
    from ..ascend import aisbench, cann, npu_smi

    checks = []
    home = cann.toolkit_home()
    version = cann.cann_version()
    checks.append(Check("ascend", "CANN toolkit", OK if home.is_dir() else WARN,
                        f"{home} (version {version or 'unknown'})" if home.is_dir() else f"{home} not found",
                        "" if home.is_dir() else cann.INSTALL_HINT))
    try:
        checks.append(Check("ascend", "atc", OK, str(cann.find_atc())))
    except YedgeError as exc:
        checks.append(Check("ascend", "atc", WARN, exc.message, exc.hint or ""))
    if shutil.which("npu-smi") is None:
        checks.append(Check("ascend", "npu-smi", WARN, "not found (no NPU driver)",
                            "convert still works with --soc-version"))
    else:
        try:
            chips = npu_smi.list_chips()
            socs = sorted({npu_smi.chip_soc(c) for c in chips})
            checks.append(Check("ascend", "npu-smi", OK, f"{len(chips)} chip(s): {', '.join(socs)}"))
        except YedgeError as exc:
            checks.append(Check("ascend", "npu-smi", FAIL, exc.message, exc.hint or ""))
    problem = aisbench.api_problem()
    fix = aisbench.INSTALL_HINT if problem == aisbench.NOT_INSTALLED else aisbench.SET_ENV_HINT
    checks.append(Check("ascend", "ais_bench", OK if problem is None else WARN,
                        "importable (InferSession)" if problem is None else problem, "" if problem is None else fix))
    runtime = importlib.util.find_spec("aclruntime") is not None
    checks.append(Check("ascend", "aclruntime", OK if runtime else WARN,
                        "installed" if runtime else "not installed", "" if runtime else aisbench.INSTALL_HINT))
    found = importlib.util.find_spec("amct_onnx") is not None  # not imported: it loads CANN's libraries
    checks.append(Check("ascend", "amct_onnx", OK if found else WARN, "installed" if found else "not installed",
                        "" if found else "optional, for an INT8 .om (convert --precision int8): pip install the "
                        "amct_onnx wheel of your CANN toolkit"))
    return checks


def workspace(ws: Workspace) -> list[Check]:
    """Which steps are done, and artifacts that no longer match what they were made from."""
    steps = ws.steps_done()
    done = [kind.STEP for kind in STEP_RECORDS if kind.STEP in steps]
    checks = [Check("workspace", "steps done", OK if done else WARN, ", ".join(done) or f"none in {ws.root}",
                    "" if done else "start with `yedge export --weights X.pth`")]
    export, prep, convert = ws.load(ExportRecord), ws.load(PrepRecord), ws.load(ConvertRecord)
    onnx_sha = export.onnx_sha256 if export else None
    if export and onnx_sha:
        onnx = ws.resolve(export.onnx)
        if not onnx.exists() or sha256_file(onnx) != onnx_sha:
            checks.append(Check("workspace", "onnx", FAIL, f"{onnx} changed or is missing since export",
                                "rerun `yedge export`"))
    for model in convert.oms if convert else []:
        stale = onnx_sha and model.onnx_sha256 != onnx_sha
        checks.append(Check("workspace", model.om, FAIL if stale else OK,
                            "built from an older ONNX" if stale else f"{model.soc_version}, current",
                            "rerun `yedge convert`" if stale else ""))
    if export and prep and export.input_dtype != prep.dtype and not convert:
        checks.append(Check("workspace", "inputs", FAIL,
                            f"prepared as {prep.dtype}, the model takes {export.input_dtype}",
                            f"rerun `yedge prep --dtype {export.input_dtype}`"))
    weights_sha = export.weights_sha256 if export else None
    prepared = len(ws.read_ids()) if prep else None
    return checks + [_run_check(ws, folder, weights_sha, prepared) for folder in _run_folders(ws)]


def _run_folders(ws: Workspace) -> list[Path]:
    """Every run folder in outputs/ (ais_bench's per-device staging folders left out)."""
    if not ws.outputs_dir.is_dir():
        return []
    return sorted(p for p in ws.outputs_dir.iterdir() if p.is_dir() and not p.name.startswith(".")
                  and (read_run(p) is not None or any(p.glob("*.bin"))))


def _run_check(ws: Workspace, run_dir: Path, weights_sha: str | None, prepared: int | None) -> Check:
    """One run folder: from the current model and inputs, and complete? The fix names the
    command that works as written (a stale folder needs --overwrite; a partial one resumes)."""
    name = "outputs/" + run_dir.name
    record = read_run(run_dir)
    backend = (record.backend if record else None) or "onnxruntime"
    infer = f"yedge infer --backend {backend} --run {run_dir.name}"
    reasons = []
    if record is None:
        reasons.append("made without a record of its model (an older yedge or by hand)")
    elif _sha256_or_none(ws.resolve(record.model)) != record.model_sha256:
        reasons.append(f"its model {record.model} changed or is gone since")
    if record is not None and weights_sha and record.weights_sha256 and record.weights_sha256 != weights_sha:
        reasons.append("computed from another checkpoint than the one exported now")
    fingerprint = prepared_fingerprint(ws)
    if record is not None and record.inputs_fingerprint and fingerprint \
            and record.inputs_fingerprint != fingerprint:
        reasons.append("computed on other prepared inputs than the current ones")
    if reasons:
        fix = f"`{infer} --overwrite`" + (" after `yedge convert`" if backend == "ascend" else "")
        return Check("workspace", name, FAIL, "; ".join(reasons), fix)
    layout = binio.run_layout(run_dir)
    count = prepared if prepared is not None else len(list(run_dir.glob("*_0.bin")))
    complete = sum(binio.sample_dtype(run_dir, str(pos), layout) is not None for pos in range(count))
    detail = f"{backend} on {(record.device if record else None) or '?'}, {complete} of {count} samples"
    if complete < count or count == 0:
        return Check("workspace", name, WARN, detail + (" (empty)" if complete == 0 else " (incomplete)"),
                     f"`{infer}` (it resumes)")
    return Check("workspace", name, OK, detail)


def _sha256_or_none(path: Path) -> str | None:
    try:
        return sha256_file(path)
    except OSError:
        return None


@dataclass
class DoctorResult:
    checks: list[Check]

    @property
    def exit_code(self) -> int:
        failed = {c.area for c in self.checks if c.status == FAIL}
        if failed - {"workspace"}:
            return EXIT_ENVIRONMENT
        return EXIT_INPUT if failed else EXIT_OK

    def to_dict(self) -> dict:
        return {"checks": [asdict(c) for c in self.checks], "exit_code": self.exit_code}


def run(ws: Workspace, ray_address: str | None = None) -> DoctorResult:
    return DoctorResult(environment() + ray(ray_address, ws.log("ray")) + ascend() + workspace(ws))
