"""Interruptions and concurrency: Ctrl-C (SIGINT) and kill -9 during prep, infer and eval, then
a rerun that completes with byte-identical results; a second yedge on the same workspace."""
import json
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact_edge_cli.steps import evaluate, infer, prep
from yolact_edge_cli.workspace import Workspace

from .conftest import make_coco_set, run_cli

pytestmark = pytest.mark.e2e

IMAGES = 40


@pytest.fixture(scope="module")
def reference(tmp_path_factory, exported):
    """A complete workspace: export (MobileNetV2), prep, infer, eval — the results to match."""
    root = tmp_path_factory.mktemp("interrupt")
    annotations = make_coco_set(root / "images", IMAGES)
    ws = exported(root / "ws", "yolact_edge_mobilenetv2_config")
    prep.run(ws, root / "images", annotations, prep.PrepOptions(workers=2))
    infer.run(ws)
    evaluate.run(ws, evaluate.EvalOptions(workers=2))
    return ws


def _files(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*")) if p.is_file()}


def _copy(reference: Workspace, tmp_path: Path, *keep: str) -> Workspace:
    """A copy of the reference workspace with only the listed folders' contents kept."""
    shutil.copytree(reference.root, tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    for name in ("inputs", "outputs", "results"):
        if name not in keep:
            shutil.rmtree(ws.root / name, ignore_errors=True)
    return ws


def _heed_ctrl_c() -> None:
    """In the child: SIGINT back to its default, as in a terminal. A suite started in the
    background (`make test &`) ignores SIGINT, and its children would inherit that."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start(ws: Workspace, *args: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "yolact_edge_cli", "-w", str(ws.root), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=_heed_ctrl_c)


def _wait_for(condition, timeout: float = 120) -> None:
    deadline = time.time() + timeout
    while not condition():
        assert time.time() < deadline, "timed out"
        time.sleep(0.01)


def _stop(proc: subprocess.Popen, sig: int) -> tuple[int, str]:
    assert proc.poll() is None, "the step finished before it could be interrupted"
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
    return proc.returncode, stderr


def _assert_interrupted(code: int, stderr: str, sig: int,
                        kept: str = "completed files are kept, rerun the step to resume") -> None:
    if sig == signal.SIGINT:
        assert code == 130, stderr
        assert "Traceback" not in stderr
        assert f"interrupted; {kept}" in stderr
    else:
        assert code == -signal.SIGKILL


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_prep_interrupted_then_resumed(reference, tmp_path, sig):
    ws = _copy(reference, tmp_path)
    plan = json.loads((reference.inputs_dir / "prep_plan.json").read_text())
    bins = ws.inputs_dir / "bin_file"
    proc = _start(ws, "prep", "--images", plan["images"], "--annotations", plan["annotations"], "--workers", "2")
    _wait_for(lambda: len(list(bins.glob("*.bin"))) >= 3)
    _assert_interrupted(*_stop(proc, sig), sig)
    assert not (ws.inputs_dir / "ids.json").exists()
    assert all(p.stat().st_size == 3_630_000 for p in bins.glob("*.bin"))
    done = run_cli("-w", ws.root, "prep", "--images", plan["images"], "--annotations", plan["annotations"])
    assert done.returncode == 0, done.stderr
    assert _files(bins) == _files(reference.inputs_dir / "bin_file")
    assert (ws.inputs_dir / "ids.json").read_bytes() == (reference.inputs_dir / "ids.json").read_bytes()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_infer_interrupted_then_resumed(reference, tmp_path, sig):
    ws = _copy(reference, tmp_path, "inputs")
    run_dir = ws.outputs_dir / "onnxruntime"
    proc = _start(ws, "infer")
    _wait_for(lambda: len(list(run_dir.glob("*_5.bin"))) >= 3)
    _assert_interrupted(*_stop(proc, sig), sig)
    assert len(list(run_dir.glob("*_5.bin"))) < IMAGES
    done = run_cli("-w", ws.root, "--json", "infer")
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["skipped_existing"] >= 3
    assert _files(run_dir) == _files(reference.outputs_dir / "onnxruntime")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL])
def test_eval_interrupted_then_rerun(reference, tmp_path, sig):
    ws = _copy(reference, tmp_path, "inputs", "outputs")
    proc = _start(ws, "eval", "--workers", "2")
    _wait_for(lambda: (ws.root / ".yedge.lock").exists()
              and (ws.root / ".yedge.lock").read_text().strip() == str(proc.pid))
    time.sleep(1.0)
    _assert_interrupted(*_stop(proc, sig), sig,
                        kept="no result file was written (they come with a complete run): rerun it")
    assert not (ws.results_dir / "bbox_detections.json").exists()
    done = run_cli("-w", ws.root, "eval")
    assert done.returncode == 0, done.stderr
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / name).read_bytes() == (reference.results_dir / name).read_bytes()


def test_a_second_yedge_on_the_same_workspace_is_refused(reference, tmp_path):
    ws = _copy(reference, tmp_path, "inputs")
    proc = _start(ws, "infer")
    _wait_for(lambda: (ws.root / ".yedge.lock").exists()
              and (ws.root / ".yedge.lock").read_text().strip() == str(proc.pid))
    second = run_cli("-w", ws.root, "eval")
    proc.communicate(timeout=300)
    assert second.returncode == 4
    assert f"another yedge (pid {proc.pid}) is working in this workspace" in second.stderr
    assert "Traceback" not in second.stderr


PREDICT_KEPT = "the drawn images already written are kept, videos and predictions.jsonl only come with a complete run"


def _children(pid: int) -> list[int]:
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.append(int(stat.parent.name))
    return found


def test_predict_interrupted_stops_its_workers_and_leaves_complete_files_only(reference, tmp_path):
    ws = _copy(reference, tmp_path)
    images = json.loads((reference.inputs_dir / "prep_plan.json").read_text())["images"]
    out = ws.root / "predict" / "p"
    proc = _start(ws, "predict", images, "--workers", "2", "--name", "p")
    _wait_for(lambda: len(list(out.glob("*.png"))) >= 3)
    workers = _children(proc.pid)
    assert len(workers) >= 4  # two pools of two
    _assert_interrupted(*_stop(proc, signal.SIGINT), signal.SIGINT, PREDICT_KEPT)
    _wait_for(lambda: not [w for w in workers if Path(f"/proc/{w}").exists()
                           and "Z" not in Path(f"/proc/{w}/stat").read_text().rsplit(")", 1)[1].split()[0]],
              timeout=10)
    assert not (out / "predictions.jsonl").exists()  # renamed into place only when complete
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left
    drawn = list(out.glob("*.png"))
    assert 3 <= len(drawn) < IMAGES and all(cv2.imread(str(p)) is not None for p in drawn)


def test_predict_interrupted_in_a_video_leaves_no_half_written_video(reference, tmp_path):
    ws = _copy(reference, tmp_path)
    clip = tmp_path / "long.mp4"
    writer = cv2.VideoWriter(str(clip), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (320, 240))
    for i in range(200):
        writer.write(np.full((240, 320, 3), i % 255, np.uint8))
    writer.release()
    out = tmp_path / "out"
    proc = _start(ws, "predict", str(clip), "-o", str(out), "--workers", "2")
    _wait_for(lambda: (out / ".long.tmp.mp4").exists() and (out / ".long.tmp.mp4").stat().st_size > 0)
    _assert_interrupted(*_stop(proc, signal.SIGINT), signal.SIGINT, PREDICT_KEPT)
    assert not out.exists() or not list(out.iterdir())  # no temporary video, no partial files
