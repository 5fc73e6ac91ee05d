"""The README's first command, end to end on the two sample photos (what `make demo` runs)."""
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import ROOT

pytestmark = pytest.mark.e2e


@pytest.mark.skipif(shutil.which("make") is None, reason="needs make")
def test_make_demo(tmp_path):
    venv = Path(sys.prefix)
    ws = tmp_path / "demo ws"  # a space in the path, too
    proc = subprocess.run(
        ["make", "--no-print-directory", "-o", str(venv / ".installed"), "demo",
         f"VENV={venv}", f"DEMO_WS={ws}"],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "YOLACT mAP" in proc.stdout and "img/s" in proc.stdout and "RANDOM" in proc.stdout
    manifest = json.loads((ws / "yedge.json").read_text())
    assert set(manifest["steps"]) == {"export", "prep", "infer", "eval", "bench", "show"}
    metrics = json.loads((ws / "results" / "metrics.json").read_text())
    assert metrics["images"] == 2
    assert metrics["yolact_ap"]["box"]["all"] == pytest.approx(4.93998787633865, abs=1e-6)
    bench = json.loads((ws / "results" / "bench.json").read_text())
    assert bench[-1]["rows"][0]["batch_size"] == 1 and bench[-1]["rows"][0]["throughput"] > 0
