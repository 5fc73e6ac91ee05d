"""A process pool that stops promptly: on Ctrl-C the workers ignore SIGINT (no tracebacks from
them) and the parent cancels what has not started; if the parent is killed (kill -9), Linux
kills the workers too instead of leaving them running."""
from __future__ import annotations

import contextlib
import gc
import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor

PR_SET_PDEATHSIG = 1
# What numpy's bundled OpenBLAS calls its thread setter, newest wheels first.
OPENBLAS_THREAD_SETTERS = ("scipy_openblas_set_num_threads64_", "scipy_openblas_set_num_threads",
                           "openblas_set_num_threads64_", "openblas_set_num_threads")


# A forked worker never collects what it inherited: a copy of a native object the parent held
# (an onnxruntime session its parent had dropped but not yet collected, say) must not be
# destroyed here — its destructor waits on a condition variable of the parent's threads, which
# the copy does not have, and the worker hangs for good (seen in a host worker's first
# torch.load, whose garbage collection met such a session). Frozen, those objects are left be.
os.register_at_fork(after_in_child=gc.freeze)


def _die_with_parent() -> None:
    with contextlib.suppress(OSError, AttributeError):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGKILL)


def _start_worker(initializer: Callable | None, initargs: tuple) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    if sys.platform.startswith("linux"):
        _die_with_parent()
    if initializer is not None:
        initializer(*initargs)


@contextlib.contextmanager
def process_pool(workers: int, initializer: Callable | None = None, initargs: tuple = (),
                 start_method: str | None = None) -> Iterator[ProcessPoolExecutor]:
    """`start_method="spawn"` for workers that must not inherit this process's state (a parent
    that already ran torch on several threads: a forked OpenMP pool can hang)."""
    import multiprocessing

    context = multiprocessing.get_context(start_method) if start_method else None
    pool = ProcessPoolExecutor(workers, mp_context=context, initializer=_start_worker,
                               initargs=(initializer, initargs))
    try:
        yield pool
    except BaseException:
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)


def limit_blas_threads(threads: int) -> bool:
    """Let numpy's matrix products use at most `threads` threads in this process; False where
    numpy's BLAS is not the OpenBLAS its wheels bundle (then nothing changes).

    OpenBLAS starts a thread per core and its threads spin while they wait: two host workers on
    two cores, each with two BLAS threads, post-processed fewer than half as many images per
    second as with one each (bench --stages: 17.6 against 35.6). The setter is called in the library
    numpy already loaded (dlopen of a loaded path returns it)."""
    import ctypes
    from pathlib import Path

    import numpy

    libs = Path(numpy.__file__).resolve().parent.parent / "numpy.libs"
    for path in sorted(libs.glob("*openblas*.so*")):
        library = ctypes.CDLL(str(path))
        for name in OPENBLAS_THREAD_SETTERS:
            setter = getattr(library, name, None)
            if setter is not None:
                setter(ctypes.c_int(threads))
                return True
    return False
