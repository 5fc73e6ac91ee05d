"""Test-only stand-in for CANN's aclruntime (never shipped): like the real extension module it
cannot be imported unless CANN's libraries are on LD_LIBRARY_PATH (what set_env.sh does), and
like a pybind11 module that never releases the GIL, one process runs one call at a time: `GIL`
is held for the whole of every call into the "device", so threads of one process serialise."""
import json
import os
import threading

if "Ascend" not in os.environ.get("LD_LIBRARY_PATH", ""):
    raise ImportError("libascendcl.so: cannot open shared object file: No such file or directory")

GIL = threading.Lock()
H2D_TIMES: list = []  # ms per host-to-device copy, as aclruntime's MemorySummary keeps them
D2H_TIMES: list = []


def trace(**fields) -> None:
    """One JSON line per execute in $FAKE_ACL_TRACE (tests read what the device did)."""
    path = os.environ.get("FAKE_ACL_TRACE")
    if path:
        with open(path, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), **fields}) + "\n")
