"""Streaming evaluation (`yedge eval --images DIR`): images → model → host in one pass, no `.bin`
inputs or raw outputs, and the very same COCO result files and metrics as prep → infer → eval."""
import json

import numpy as np
import pytest

from yolact_edge_cli.backends.onnxruntime import OrtSession
from yolact_edge_cli.steps import evaluate, infer

from .conftest import assert_clean_failure, run_cli

pytestmark = pytest.mark.slow

MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    return prepared(tmp_path_factory.mktemp("stream") / "ws", MBV2)


def _same_results(ws, run: str) -> None:
    """results/<run>/ (file-based) and results/stream/ hold identical result files and metrics."""
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / run / name).read_bytes() == (ws.results_dir / "stream" / name).read_bytes(), name
    theirs, ours = (json.loads((ws.results_dir / r / "metrics.json").read_text()) for r in (run, "stream"))
    assert ours["coco"] == theirs["coco"] and ours["yolact_ap"] == theirs["yolact_ap"]
    assert ours["streamed"] and not theirs["streamed"]
    assert ours["provenance"]["image_ids"] == theirs["provenance"]["image_ids"]
    # the same pictures: drawn from the same arrays (docs/pictures.md §1)
    assert ours["per_class"] == theirs["per_class"] and len(ours["pictures"]) == len(theirs["pictures"]) == 5
    kept = [np.load(ws.results_dir / r / "pr_curves.npz") for r in (run, "stream")]
    assert sorted(kept[0].files) == sorted(kept[1].files)
    for name in kept[0].files:
        np.testing.assert_array_equal(kept[0][name], kept[1][name], err_msg=name)


@pytest.mark.exactness
@pytest.mark.parametrize("backend", ["onnxruntime", "torch"])
def test_streaming_gives_the_files_of_prep_infer_eval(workspace, backend):
    if backend != "onnxruntime":
        infer.run(workspace, infer.InferOptions(backend=backend))
    evaluate.run(workspace, evaluate.EvalOptions(workers=1), outputs=workspace.outputs_dir / backend)
    before = sorted(p.name for p in workspace.root.rglob("*") if p.is_file())
    proc = run_cli("-w", workspace.root, "--json", "eval", "--images", workspace.step("prep")["inputs"]["images"],
                   "--backend", backend, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["streamed"] is True
    _same_results(workspace, backend)
    written = sorted(p.name for p in workspace.root.rglob("*") if p.is_file())
    assert not [n for n in set(written) - set(before) if n.endswith(".bin")]  # nothing but results


@pytest.mark.exactness
def test_interrupted_streaming_leaves_no_results_and_a_rerun_gives_the_same(workspace, monkeypatch):
    evaluate.run(workspace, evaluate.EvalOptions(workers=1), outputs=workspace.outputs_dir / "onnxruntime")
    calls = []
    original = OrtSession.run

    def interrupted(self, batch):
        calls.append(1)
        if len(calls) == 2:
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(OrtSession, "run", interrupted)
    stream = workspace.results_dir / "stream"
    for path in stream.glob("*"):  # the earlier run's results, pictures and curves
        path.unlink()
    with pytest.raises(KeyboardInterrupt):
        evaluate.run_streaming(workspace, None, evaluate.EvalOptions(workers=1),
                               evaluate.StreamOptions(backend="onnxruntime"))
    assert not (stream.exists() and list(stream.iterdir()))  # no half-written result
    monkeypatch.setattr(OrtSession, "run", original)
    evaluate.run_streaming(workspace, None, evaluate.EvalOptions(workers=1),
                           evaluate.StreamOptions(backend="onnxruntime"))
    _same_results(workspace, "onnxruntime")


def test_a_folder_the_annotations_do_not_describe_is_named(workspace, tmp_path):
    """Streaming eval on a folder holding none of the annotated file names: said before any
    image runs, with the fix (not 'none of the images could be read')."""
    other = tmp_path / "other"
    other.mkdir()
    (other / "unrelated.jpg").write_bytes(b"")
    proc = run_cli("-w", workspace.root, "eval", "--images", other, "--stream")
    assert_clean_failure(proc, "none of the 2 annotated images is in this folder", "--annotations", code=3)
    assert "━" not in proc.stderr  # before the progress bar


def test_streaming_options_that_need_a_run_folder_are_refused(workspace):
    proc = run_cli("-w", workspace.root, "eval", "--stream", "--allow-missing")
    assert proc.returncode == 2 and "streaming has none" in proc.stderr


def test_bench_stream_reports_each_stage_and_the_wall_throughput(workspace):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--stream", "--num-images", "2", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["mode"] == "stream" and result["workers"] == 1
    stages = result["stages_ms"]
    assert set(stages) == {"decode", "inference", "heads", "detect", "masks", "json", "write", "wall",
                           "images_per_second"}
    assert all(stages[k] > 0 for k in ("decode", "inference", "masks", "wall"))
    # one process per stage here: the wall time per image is at least the busiest stage's
    assert stages["wall"] >= max(stages["decode"], stages["inference"]) * 0.9
    logged = json.loads((workspace.results_dir / "bench.json").read_text())
    assert logged[-1]["mode"] == "stream"


def test_streaming_in_a_fresh_workspace_then_show(workspace, tmp_path):
    """No prep at all: streaming eval reads the images, show draws them from there, and no
    warning about prepared inputs it never used."""
    fresh = tmp_path / "fresh"
    images = workspace.step("prep")["inputs"]["images"]
    annotations = workspace.step("prep")["inputs"]["annotations"]
    proc = run_cli("-w", fresh, "--json", "eval", "--images", images, "--annotations", annotations,
                   "--model", workspace.default_onnx, "--weights", workspace.step("export")["inputs"]["weights"],
                   "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads((fresh / "results" / "stream" / "metrics.json").read_text())
    assert metrics["provenance"]["device"] == "cpu" and metrics["provenance"]["backend"] == "onnxruntime"
    proc = run_cli("-w", fresh, "--json", "show", "--num-images", "2")
    assert proc.returncode == 0, proc.stderr
    assert "warning" not in proc.stderr and len(json.loads(proc.stdout)["pictures"]) == 2
