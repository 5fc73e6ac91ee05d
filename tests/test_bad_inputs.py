"""The rest of the catalogue of bad inputs (docs/errors.md): every step in an
empty workspace, a workspace from another model, a full disk, odd paths, a read-only workspace."""
import json
import resource
import shutil
import signal
import subprocess
import sys

import pytest

from yolact_edge_cli.steps import export
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, make_coco_set, run_cli

MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"


@pytest.mark.parametrize("argv, fragments", [
    (["convert", "--soc-version", "Ascend310P3"], ["no exported ONNX model", "yedge export"]),
    (["infer"], ["no exported model", "yedge export"]),
    (["infer", "--backend", "ascend"], ["no converted .om model", "yedge convert"]),
    (["eval"], ["no inference outputs", "yedge infer"]),
    (["bench"], ["no exported model", "yedge export"]),
    (["show"], ["no evaluation results", "yedge eval"]),
    (["compare", "outputs/a", "outputs/b"], ["no prepared inputs", "yedge prep"]),
])
def test_each_step_in_an_empty_workspace(tmp_path, argv, fragments):
    proc = run_cli("-w", tmp_path / "empty", *argv, cwd=tmp_path)
    assert_clean_failure(proc, *fragments, code=3)


def test_prep_and_export_name_their_missing_arguments(tmp_path):
    proc = run_cli("-w", tmp_path, "prep")
    assert proc.returncode == 2 and "--images" in proc.stderr and "Traceback" not in proc.stderr
    proc = run_cli("-w", tmp_path, "export")
    assert proc.returncode == 2 and "--weights" in proc.stderr


@pytest.fixture(scope="module")
def small(tmp_path_factory, prepared):
    return prepared(tmp_path_factory.mktemp("small") / "ws", "yolact_edge_mobilenetv2_config")


def test_workspace_from_another_model(small, tmp_path, checkpoint):
    shutil.copytree(small.root, tmp_path / "ws")
    ws = Workspace(tmp_path / "ws")
    before = {p.name: p.read_bytes() for p in (ws.outputs_dir / "onnxruntime").glob("*.bin")}
    export.run(ws, checkpoint("yolact_edge_mobilenetv2_config", seed=1))
    proc = run_cli("-w", ws.root, "infer")
    assert_clean_failure(proc, "holds outputs of another model", "--run NEW_NAME", "--overwrite", code=3)
    assert {p.name: p.read_bytes() for p in (ws.outputs_dir / "onnxruntime").glob("*.bin")} == before
    proc = run_cli("-w", ws.root, "--json", "infer", "--overwrite")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["computed"] == 2
    assert {p.name: p.read_bytes() for p in (ws.outputs_dir / "onnxruntime").glob("*.bin")} != before


def _limit_file_size():
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (1_000_000, 1_000_000))


def test_full_disk_while_writing(tmp_path):
    """Simulated with a 1 MB file-size limit: writes fail as on a full disk (EFBIG)."""
    annotations = make_coco_set(tmp_path / "images", 4)
    ws = tmp_path / "ws"
    argv = [sys.executable, "-m", "yolact_edge_cli", "-w", str(ws), "prep", "--images",
            str(tmp_path / "images"), "--annotations", str(annotations), "--workers", "1"]
    proc = subprocess.run(argv, capture_output=True, text=True, preexec_fn=_limit_file_size)
    assert_clean_failure(proc, "could not write: file too large", "free disk space", code=4)
    bins = ws / "inputs" / "bin_file"
    assert not list(bins.glob("*")) and not (ws / "inputs" / "ids.json").exists()
    proc = subprocess.run(argv, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert len(list(bins.glob("*.bin"))) == 4


def test_paths_with_spaces_and_non_ascii(tmp_path, checkpoint):
    root = tmp_path / "wörk space"
    images = copy_sample_images(root / "ïmages dir")
    ws = root / "my ws"
    weights = root / "poids à tester.pth"
    shutil.copy(checkpoint("yolact_edge_mobilenetv2_config"), weights)
    for argv in (["export", "--weights", weights], ["prep", "--images", images, "--annotations", MINI],
                 ["infer"], ["eval"], ["show", "--num-images", "1"]):
        proc = run_cli("-w", ws, *argv)
        assert proc.returncode == 0, (argv, proc.stderr)
    assert (ws / "results" / "metrics.json").exists()


def test_read_only_workspace(small, tmp_path):
    shutil.copytree(small.root, tmp_path / "ws")
    ws = tmp_path / "ws"
    if subprocess.run(["chattr", "+i", str(ws)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        manifest = (ws / "yedge.json").read_bytes()
        proc = run_cli("-w", ws, "eval")
        assert_clean_failure(proc, "workspace is not writable", code=4)
        assert (ws / "yedge.json").read_bytes() == manifest
    finally:
        subprocess.run(["chattr", "-i", str(ws)], check=True)
