"""Test-only stand-in for CANN's aclruntime (never shipped): like the real extension module it
cannot be imported unless CANN's libraries are on LD_LIBRARY_PATH (what set_env.sh does)."""
import os

if "Ascend" not in os.environ.get("LD_LIBRARY_PATH", ""):
    raise ImportError("libascendcl.so: cannot open shared object file: No such file or directory")
