"""`yedge doctor`: what this machine can run, and what state the workspace is in — one line per
item with what to do about it."""
from __future__ import annotations

import importlib
import importlib.util
import platform
import shutil
import sys
from dataclasses import asdict, dataclass

from ..errors import EXIT_ENVIRONMENT, EXIT_INPUT, EXIT_OK, YedgeError
from ..workspace import Workspace, sha256_file

OK, WARN, FAIL = "ok", "warn", "fail"


@dataclass
class Check:
    area: str      # "environment", "ascend" or "workspace"
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
    checks = [Check("environment", "python", OK if sys.version_info >= (3, 10) else FAIL,
                    platform.python_version(), "use Python 3.10 or newer")]
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
    return checks


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
    api = aisbench.api_available()
    checks.append(Check("ascend", "ais_bench", OK if api else WARN,
                        "importable (InferSession)" if api else "not importable", "" if api else aisbench.INSTALL_HINT))
    runtime = importlib.util.find_spec("aclruntime") is not None
    checks.append(Check("ascend", "aclruntime", OK if runtime else WARN,
                        "installed" if runtime else "not installed", "" if runtime else aisbench.INSTALL_HINT))
    return checks


def workspace(ws: Workspace) -> list[Check]:
    """Which steps are done, and artifacts that no longer match what they were made from."""
    steps = ws.manifest()["steps"]
    done = [name for name in ("export", "prep", "convert", "infer", "eval") if name in steps]
    checks = [Check("workspace", "steps done", OK if done else WARN, ", ".join(done) or f"none in {ws.root}",
                    "" if done else "start with `yedge export --weights X.pth`")]
    export, prep, convert, infer = (steps.get(n, {}) for n in ("export", "prep", "convert", "infer"))
    onnx_sha = export.get("outputs", {}).get("onnx_sha256")
    if onnx_sha:
        onnx = ws.resolve(export["outputs"]["onnx"])
        if not onnx.exists() or sha256_file(onnx) != onnx_sha:
            checks.append(Check("workspace", "onnx", FAIL, f"{onnx} changed or is missing since export",
                                "rerun `yedge export`"))
    for model in convert.get("outputs", {}).get("models", []):
        stale = onnx_sha and model["onnx_sha256"] != onnx_sha
        checks.append(Check("workspace", model["om"], FAIL if stale else OK,
                            "built from an older ONNX" if stale else f"{model['soc_version']}, current",
                            "rerun `yedge convert`" if stale else ""))
    wanted_dtype = export.get("options", {}).get("input_dtype")
    have_dtype = prep.get("options", {}).get("dtype")
    if wanted_dtype and have_dtype and wanted_dtype != have_dtype and not convert:
        checks.append(Check("workspace", "inputs", FAIL, f"prepared as {have_dtype}, the model takes {wanted_dtype}",
                            f"rerun `yedge prep --dtype {wanted_dtype}`"))
    if infer:
        model = infer["inputs"]["model"]
        try:
            current = sha256_file(model)
        except OSError:
            current = None
        stale = current != infer["inputs"]["model_sha256"] or \
            (infer["options"]["backend"] == "onnxruntime" and onnx_sha and current != onnx_sha)
        checks.append(Check("workspace", "outputs/" + infer["outputs"]["run"], FAIL if stale else OK,
                            "from another model than the current one" if stale else
                            f"{infer['options']['backend']} on {infer['options']['device']}",
                            "rerun `yedge infer` (or `yedge infer --run NEW`)" if stale else ""))
    return checks


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


def run(ws: Workspace) -> DoctorResult:
    return DoctorResult(environment() + ascend() + workspace(ws))
