"""ais_bench's path rules as the tool applies them to --model, --input, --output and
--output_dirname (docs/ascend.md §1.1): safe characters only, no symlinks, nothing writable by
group or others; the emulator refuses what the tool refuses."""
import os
import re
import stat

SAFE_PATH = re.compile(r"^[A-Za-z0-9_/.\-]+$")


class PathRefused(ValueError):
    pass


def check(path: str, what: str) -> None:
    absolute = os.path.abspath(path)
    if not SAFE_PATH.match(absolute):
        raise PathRefused(f"{what} path:{absolute} is illegal, only [A-Za-z0-9_/.-] are allowed")
    if os.path.islink(path):
        raise PathRefused(f"{what} path:{absolute} is a soft link, not supported")
    if os.path.exists(path) and os.stat(path).st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise PathRefused(f"{what} path:{absolute} is writable by group or others, not allowed")
