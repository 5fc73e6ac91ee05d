"""The byte-for-byte promises hold on other CPUs' kernels, not only on this one's.

The tests marked `exactness` compare two paths on one machine (worker counts, streaming and
files, predict and eval, the head and detect layouts). Which kernels numpy, OpenBLAS, MKL, oneDNN
and PyTorch pick depends on the CPU, so here those tests run again with each library limited, by
its own documented environment variable, to what an older or another vendor's CPU offers: AVX2
(AMD Zen, Intel before AVX-512) and SSE4.2. onnxruntime has no such switch: it runs its own
kernels for this CPU in every case (docs/model.md, "Exactness").

The two reruns build their checkpoints, exports and prepared workspaces once between them (the
first to need one builds it under its limit, conftest.built_once): those are the inputs of the
comparisons, each test's two paths still run in its own rerun under its own limit. Onnxruntime's
outputs in a prepared workspace are the same bits under either limit (it has no switch), and the
two run on the same threads. The main run's builds are not shared: its workers compute on one
thread.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT, SHARED_DIR_VARIABLE

ISA_LIMITS = {
    "avx2": {"OPENBLAS_CORETYPE": "Haswell", "MKL_ENABLE_INSTRUCTIONS": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
             "ATEN_CPU_CAPABILITY": "avx2", "NPY_DISABLE_CPU_FEATURES": "X86_V4 AVX512_ICL AVX512_SPR"},
    "sse4.2": {"OPENBLAS_CORETYPE": "Nehalem", "MKL_ENABLE_INSTRUCTIONS": "SSE4_2", "ONEDNN_MAX_CPU_ISA": "SSE41",
               "ATEN_CPU_CAPABILITY": "default",
               "NPY_DISABLE_CPU_FEATURES": "X86_V3 X86_V4 AVX512_ICL AVX512_SPR"},
}
# What each limit makes the libraries report, to show the limit took effect.
EXPECTED_KERNELS = {"avx2": ("Haswell", "AVX2"), "sse4.2": ("Nehalem", "DEFAULT")}

_REPORT_KERNELS = """
import ctypes, numpy, torch
from pathlib import Path
found = sorted((Path(numpy.__file__).resolve().parent.parent / 'numpy.libs').glob('*openblas*.so*'))
library = ctypes.CDLL(str(found[0]))
corename = getattr(library, 'scipy_openblas_get_corename64_', None) or library.openblas_get_corename
corename.restype = ctypes.c_char_p
print(corename().decode(), torch.backends.cpu.get_cpu_capability())
"""


def _has_avx2() -> bool:
    return "avx2" in Path("/proc/cpuinfo").read_text().split()


@pytest.mark.slow
@pytest.mark.parametrize("limit", list(ISA_LIMITS))
def test_the_exactness_tests_pass_under_an_instruction_set_limit(limit, tmp_path, shared_dir):
    if sys.platform != "linux" or os.uname().machine != "x86_64":
        pytest.skip("the limits are x86-64 instruction sets")
    if limit == "avx2" and not _has_avx2():
        pytest.skip("this CPU has no AVX2")
    env = {**os.environ, **ISA_LIMITS[limit], SHARED_DIR_VARIABLE: str(shared_dir / "instruction-set-reruns")}
    env.pop("PYTEST_ADDOPTS", None)
    if "PYTEST_XDIST_WORKER" in env:
        # a plain pytest session of its own, on the threads a user's process would have (not the
        # one thread conftest.py gives each xdist worker): thread counts change kernels too
        for name in [name for name in env if name.startswith("PYTEST_XDIST_")] + ["OMP_NUM_THREADS"]:
            env.pop(name, None)
    kernels = subprocess.run([sys.executable, "-c", _REPORT_KERNELS], env=env, capture_output=True, text=True)
    assert kernels.returncode == 0, kernels.stderr
    assert tuple(kernels.stdout.split()) == EXPECTED_KERNELS[limit]
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-m", "exactness", "-p", "no:cacheprovider",
         "--basetemp", str(tmp_path / "run"), str(ROOT / "tests")],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=1800)
    assert proc.returncode == 0, proc.stdout[-6000:] + proc.stderr[-2000:]
    assert " passed" in proc.stdout and " failed" not in proc.stdout


def test_numpy_heads_give_the_same_bits_on_any_number_of_threads(checkpoint):
    """The fpn layout's host heads: one thread or three, the same bits (the product's row blocks
    never depend on the thread count), and PyTorch's module within float32 rounding."""
    import numpy as np
    import torch

    from yolact_edge_cli.model.checkpoint import load_model
    from yolact_edge_cli.model.head import run_heads
    from yolact_edge_cli.model.host_heads import HostHeads
    from yolact_edge_cli.parallel import limit_blas_threads

    config = "yolact_edge_mobilenetv2_config"
    weights = checkpoint(config)
    limit_blas_threads(1)
    rng = np.random.default_rng(0)
    maps = [rng.standard_normal((1, 256, s, s)).astype(np.float32) for s in (69, 35, 18, 9, 5)]
    one, three = (HostHeads.from_checkpoint(weights, config, threads)(maps) for threads in (1, 3))
    assert all(a.tobytes() == b.tobytes() for a, b in zip(one, three))
    with torch.inference_mode():
        want = run_heads(load_model(weights, config).head, [torch.from_numpy(m) for m in maps])
    for got, expected in zip(one, want):
        np.testing.assert_allclose(got, expected[0].numpy(), rtol=0, atol=2e-5)

