"""Finding the CANN toolkit and giving child processes its environment (set_env.sh)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from ..errors import EnvironmentProblem

_DUMP_ENV = ("import os, sys; sys.stdout.buffer.write(b'\\0'.join("
             "k.encode() + b'=' + v.encode() for k, v in os.environ.items()))")
DEFAULT_TOOLKIT = Path("/usr/local/Ascend/ascend-toolkit/latest")
INSTALL_HINT = ("install the CANN toolkit (Ascend-cann-toolkit_*.run) and run "
                "`source /usr/local/Ascend/ascend-toolkit/set_env.sh`, or put atc on PATH")


def toolkit_home() -> Path:
    return Path(os.environ.get("ASCEND_TOOLKIT_HOME") or DEFAULT_TOOLKIT)


def find_atc() -> Path:
    """atc on PATH, else $ASCEND_TOOLKIT_HOME/bin/atc, else the default install location."""
    on_path = shutil.which("atc")
    if on_path:
        return Path(on_path)
    for candidate in (toolkit_home() / "bin" / "atc", DEFAULT_TOOLKIT / "bin" / "atc"):
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise EnvironmentProblem("atc (the Ascend model compiler) was not found", hint=INSTALL_HINT)


def child_env(atc: Path) -> dict[str, str]:
    """The environment for atc: ours, plus set_env.sh's variables when it was not sourced."""
    env = dict(os.environ)
    if env.get("ASCEND_TOOLKIT_HOME") and env.get("ASCEND_OPP_PATH"):
        return env
    home = atc.resolve().parent.parent
    for script in (home.parent / "set_env.sh", home / "set_env.sh", DEFAULT_TOOLKIT.parent / "set_env.sh"):
        if script.is_file():
            bash = shutil.which("bash") or "/bin/bash"
            try:
                # bash sources the script, then this interpreter prints the resulting environment
                # NUL-separated (no `env` binary needed on PATH).
                proc = subprocess.run([bash, "-c", 'source "$1" >/dev/null 2>&1; exec "$2" -c "$3"',
                                       "set_env", str(script), sys.executable, _DUMP_ENV],
                                      capture_output=True, env=env, timeout=60)
            except (OSError, subprocess.TimeoutExpired) as exc:
                raise EnvironmentProblem(f"could not apply CANN's set_env.sh ({exc})", path=script,
                                         hint="source it yourself before running yedge") from None
            if proc.returncode == 0:
                pairs = (item.split(b"=", 1) for item in proc.stdout.split(b"\0") if b"=" in item)
                return {k.decode(errors="replace"): v.decode(errors="replace") for k, v in pairs}
    return env


def cann_version(env: dict[str, str] | None = None) -> str | None:
    """The toolkit version from version.cfg (`runtime_running_version=[7.6.0.1.220:8.0.0]`)."""
    home = Path((env or os.environ).get("ASCEND_TOOLKIT_HOME") or DEFAULT_TOOLKIT)
    try:
        text = (home / "version.cfg").read_text(errors="replace")
    except OSError:
        return None
    match = re.search(r"running_version=\[[^:\]]*:([^\]]+)\]", text) or re.search(r"version=(\S+)", text)
    return match.group(1) if match else None
