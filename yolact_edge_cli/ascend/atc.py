"""Driving `atc`: the recipe's argv, a streamed log, success detection and the produced `.om`
(docs/ascend.md §2)."""
from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

from ..choices import PrecisionMode
from ..errors import EnvironmentProblem, UsageError, YedgeError
from ..model.config import INPUT_SIZE, MEANS_BGR, STD_BGR

SUCCESS_LINE = "ATC run success"
PRECISION_MODES = PrecisionMode.values()
# The precision modes later CANN releases added, with the release that first documents them
# (docs/ascend.md §2.1); the bf16 ones also need a chip with bf16 cubes (Atlas A2/A3).
PRECISION_MODE_SINCE = {
    PrecisionMode.CUBE_FP16IN_FP32OUT.value: (7, 0),
    PrecisionMode.ALLOW_MIX_PRECISION_FP16.value: (7, 0),
    PrecisionMode.ALLOW_MIX_PRECISION_BF16.value: (7, 0),
    PrecisionMode.ALLOW_FP32_TO_BF16.value: (7, 0),
}
BF16_MODES = (PrecisionMode.ALLOW_MIX_PRECISION_BF16.value, PrecisionMode.ALLOW_FP32_TO_BF16.value)
BF16_SOCS = ("Ascend910B", "Ascend910_93")  # Atlas A2 and A3 SoC names start so


# ONNX operators yedge exports that atc parses only from a later CANN release than the recipe's
# (docs/atc-onnx-operators.md, "GridSample"): the video configs' non-keyframe graph warps with it.
OPERATOR_SINCE = {"GridSample": (8, 0)}


class AtcFailed(YedgeError):
    exit_code = 1


def check_operators(op_types: set[str], cann_version: str | None, onnx: Path) -> None:
    """An operator this CANN's atc has no parser for, said before atc loads the model; an
    unknown CANN version is left to atc."""
    here = release(cann_version)
    for op_type, since in sorted(OPERATOR_SINCE.items()):
        if op_type in op_types and here and here < since:
            raise UsageError(f"this toolkit is CANN {cann_version}, whose atc has no parser for "
                             f"{op_type} (a video model's non-keyframe graph warps with it)", path=onnx,
                             hint=f"convert on CANN {since[0]}.{since[1]} or later")


@dataclass(frozen=True)
class AtcJob:
    onnx: Path
    output: Path          # without the .om suffix
    soc_version: str
    batch_size: int | None = None           # static batch
    dynamic_batch: tuple[int, ...] = ()     # or these batch sizes
    precision_mode: str | None = None
    aipp_config: Path | None = None
    extra: tuple[str, ...] = ()
    # inputs after `image`, as (name, per-sample shape): a non-keyframe graph's key state
    more_inputs: tuple[tuple[str, tuple[int, ...]], ...] = ()

    def argv(self, atc: str | Path = "atc") -> list[str]:
        """Exactly the recipe's command, plus what the options ask for."""
        batch = -1 if self.dynamic_batch else self.batch_size
        shapes = [("image", (3, INPUT_SIZE, INPUT_SIZE)), *self.more_inputs]
        input_shape = ";".join(f"{name}:{','.join(map(str, (batch, *dims)))}" for name, dims in shapes)
        argv = [str(atc), "--model", str(self.onnx), "--framework", "5", "--output", str(self.output),
                "--log", "error", "--soc_version", self.soc_version, "--input_shape", input_shape]
        if self.dynamic_batch:
            argv += ["--dynamic_batch_size", ",".join(map(str, self.dynamic_batch))]
        if self.precision_mode:
            argv += ["--precision_mode", self.precision_mode]
        if self.aipp_config:
            argv += ["--insert_op_conf", str(self.aipp_config)]
        return argv + list(self.extra)


def release(version: str | None) -> tuple[int, int] | None:
    """(major, minor) of a CANN version string such as 8.0.0, 8.0.RC1 or 7.0.RC1.alpha003."""
    match = re.match(r"(\d+)\.(\d+)", version or "")
    return (int(match.group(1)), int(match.group(2))) if match else None


def check_precision(mode: str | None, extra: tuple[str, ...], soc_version: str,
                    cann_version: str | None) -> None:
    """What atc would refuse with E10001 after loading the model, said first: a mode this CANN
    release does not have, a bf16 mode on a chip without bf16, --precision_mode together with
    --precision_mode_v2. An unknown CANN version is left to atc."""
    if mode and any(arg.lstrip("-").startswith("precision_mode_v2") for arg in extra):
        raise UsageError("--precision-mode and --atc-arg --precision_mode_v2 cannot be used together (atc refuses it)",
                         hint="keep one of them")
    if not mode:
        return
    if mode in BF16_MODES and not soc_version.startswith(BF16_SOCS):
        raise UsageError(f"--precision-mode {mode} needs a chip with bf16 (Atlas A2/A3: Ascend910B*, "
                         f"Ascend910_93*), not {soc_version}", hint="use allow_mix_precision_fp16 or force_fp16")
    since, here = PRECISION_MODE_SINCE.get(mode), release(cann_version)
    if since and here and here < since:
        raise UsageError(f"--precision-mode {mode} needs CANN {since[0]}.{since[1]} or later; this toolkit "
                         f"is CANN {cann_version}", hint="upgrade CANN, or pick a mode it has: "
                         + ", ".join(m for m in PRECISION_MODES if m not in PRECISION_MODE_SINCE))


def aipp_config() -> str:
    """Static AIPP that does BaseTransform's normalisation on the device: the .om then takes
    uint8 RGB pixels, HWC (`prep --dtype uint8 --layout nhwc`), and computes
    (pixel − min_chn) · var_reci_chn per channel (RGB order) into the model's float input."""
    lines = ["aipp_op {", "    aipp_mode : static", "    input_format : RGB888_U8",
             f"    src_image_size_w : {INPUT_SIZE}", f"    src_image_size_h : {INPUT_SIZE}",
             "    csc_switch : false", "    rbuv_swap_switch : false"]
    for i, (mean, std) in enumerate(zip(MEANS_BGR[::-1], STD_BGR[::-1])):
        lines += [f"    min_chn_{i} : {mean}", f"    var_reci_chn_{i} : {1 / std:.15f}"]
    return "\n".join(lines + ["}"]) + "\n"


def run(job: AtcJob, atc: Path, env: dict[str, str], log_path: Path, cwd: Path) -> Path:
    """Run atc, streaming its output to `log_path`; return the `.om` it wrote."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    before = {p: p.stat().st_mtime_ns for p in job.output.parent.glob(f"{job.output.name}*.om")}
    try:
        with open(log_path, "w", encoding="utf-8") as log:
            log.write(" ".join(job.argv(atc)) + "\n")
            log.flush()
            proc = subprocess.Popen(job.argv(atc), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                    env=env, cwd=cwd, text=True, errors="replace")
            lines = []
            assert proc.stdout is not None  # stdout=PIPE
            for line in proc.stdout:
                log.write(line)
                lines.append(line.rstrip("\n"))
            code = proc.wait()
    except OSError as exc:
        raise EnvironmentProblem(f"could not run atc ({exc.strerror})", path=atc,
                                 hint="check that it is executable and CANN is installed") from None
    errors = [line.strip() for line in lines if line.strip()[:1] == "E" and ":" in line[:8]]
    detail = "; ".join(errors[:3]) or (lines[-1] if lines else "no output")
    if code != 0:
        raise AtcFailed(f"atc failed (exit {code}): {detail}", path=log_path,
                        hint="read the log; nothing was recorded")
    if not any(SUCCESS_LINE in line for line in lines):
        raise AtcFailed(f"atc exited 0 but never printed '{SUCCESS_LINE}': {detail}", path=log_path,
                        hint="read the log; nothing was recorded")
    # `<output>.om`, or `<output>_linux_<cpu>.om` for dynamic-shape graphs (docs/ascend.md §2.4)
    produced = sorted(p for p in job.output.parent.glob(f"{job.output.name}*.om")
                      if before.get(p) != p.stat().st_mtime_ns)
    if not produced:
        raise AtcFailed(f"atc reported success but wrote no {job.output.name}*.om", path=job.output.parent,
                        hint="check the log and free disk space")
    return produced[0]
