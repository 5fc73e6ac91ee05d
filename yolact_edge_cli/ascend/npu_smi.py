"""`npu-smi info` → the `--soc_version` atc needs, for every table layout the tool prints
(docs/ascend.md §3)."""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass

from ..errors import EnvironmentProblem

SOC_HINT = "pass --soc-version (e.g. --soc-version Ascend310P3)"
# Names that do not identify one chip: the board query says which.
GENERIC_NAMES = ("910B", "Ascend910", "910")


@dataclass(frozen=True)
class Chip:
    npu: int
    chip: int
    device: int | None  # the logical id ais_bench's --device takes (None where not printed)
    name: str
    health: str


_ROW = re.compile(r"^\|\s*(\d+)\s+(\S+(?: \S+)?)\s*\|\s*(OK|Warning|Alarm|Critical|[A-Za-z]+)\s*\|")
_SECOND = re.compile(r"^\|\s*(\d+)(?:\s+(\d+))?\s*\|")


def parse_info(text: str) -> list[Chip]:
    """Chips of an `npu-smi info` table: a name row `| NPU Name | Health |` followed by a row
    `| Chip [Device|Phy-ID] | Bus-Id |`; the process table after it is ignored."""
    lines = [line.strip() for line in text.splitlines()]
    header = next((line for line in lines if re.match(r"^\|\s*Chip\b", line)), "")
    has_device = bool(re.match(r"^\|\s*Chip\s+(Device|Phy-ID)\b", header))
    chips = []
    for i, line in enumerate(lines):
        row = _ROW.match(line)
        if not row or i + 1 >= len(lines):
            continue
        second = _SECOND.match(lines[i + 1])
        if not second:
            continue
        chip = int(second.group(1))
        device = int(second.group(2)) if has_device and second.group(2) is not None else None
        chips.append(Chip(int(row.group(1)), chip, device, row.group(2).replace(" ", ""), row.group(3)))
    return chips


def soc_from_name(name: str) -> str | None:
    """`310P3` → `Ascend310P3`; None for generic names that need the board query."""
    name = name.replace(" ", "")
    if name in GENERIC_NAMES:
        return None
    return name if name.startswith("Ascend") else f"Ascend{name}"


def parse_board(text: str) -> str:
    """The chip-level board query: A2 gives Chip Type + Chip Name (Ascend910B4); A3 gives
    Chip Name + '_' + NPU Name (Ascend910_9392)."""
    fields = {}
    for line in text.splitlines():
        if ":" in line:
            key, value = line.split(":", 1)
            fields[key.strip()] = value.strip().replace(" ", "")
    name = fields.get("Chip Name", "")
    if not name:
        raise EnvironmentProblem("npu-smi board query printed no Chip Name", hint=SOC_HINT)
    if "NPU Name" in fields and name.startswith("Ascend"):
        return f"{name}_{fields['NPU Name']}"
    chip_type = fields.get("Chip Type", "Ascend")
    return name if name.startswith(chip_type) else f"{chip_type}{name}"


def _run(args: list[str]) -> str:
    tool = shutil.which("npu-smi")
    if tool is None:
        raise EnvironmentProblem("npu-smi not found: no NPU driver on this machine", hint=SOC_HINT)
    try:
        proc = subprocess.run([tool, *args], capture_output=True, text=True, timeout=60)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise EnvironmentProblem(f"npu-smi {' '.join(args)} did not run ({exc})", hint=SOC_HINT) from None
    if proc.returncode != 0:
        last = (proc.stdout + proc.stderr).strip().splitlines()[-1:] or ["no output"]
        raise EnvironmentProblem(f"npu-smi {' '.join(args)} failed (exit {proc.returncode}: {last[0]})",
                                 hint=SOC_HINT)
    return proc.stdout


def list_chips() -> list[Chip]:
    text = _run(["info"])
    chips = parse_info(text)
    if not chips:
        raise EnvironmentProblem("could not read any NPU from `npu-smi info` output", hint=SOC_HINT)
    return chips


def chip_soc(chip: Chip) -> str:
    return soc_from_name(chip.name) or parse_board(
        _run(["info", "-t", "board", "-i", str(chip.npu), "-c", str(chip.chip)]))


def detect_soc() -> str:
    """The single soc_version of this machine's NPUs; mixed chips are an error."""
    socs = sorted({chip_soc(chip) for chip in list_chips()})
    if len(socs) > 1:
        raise EnvironmentProblem(f"this machine has different NPUs ({', '.join(socs)})",
                                 hint="pass --soc-version for the one you target")
    return socs[0]
