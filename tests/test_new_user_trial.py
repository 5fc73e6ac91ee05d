"""The defects a new user's trial found (issue 19's table), one test per row: each failed on
the code before the fix."""
from __future__ import annotations

import functools
import http.server
import json
import threading
from pathlib import Path

import cv2
import numpy as np
import pytest

from .conftest import DATA, MINI_ANNOTATIONS, assert_clean_failure, copy_sample_images, run_cli

pytestmark = pytest.mark.slow

MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    """export (fpn layout), prep and infer (onnxruntime) on the two sample photos."""
    return prepared(tmp_path_factory.mktemp("trial") / "ws", MBV2)


def _clip(path: Path, frames: int = 3) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), 10, (160, 120))
    for i in range(frames):
        writer.write(cv2.resize(cv2.imread(str(DATA / "coffee.png")), (160, 120)) // (i + 1))
    writer.release()
    return path


def _snapshot(folder: Path) -> dict[str, tuple[bytes, int]]:
    return {str(p.relative_to(folder)): (p.read_bytes(), p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".yedge.lock"}  # it holds a pid


# 1 -------------------------------------------------------------------------------------------
def test_row_01_url_sources_get_a_safe_output_name(workspace, tmp_path):
    (tmp_path / "served").mkdir()
    clip = _clip(tmp_path / "served" / "clip.avi")
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(clip.parent))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/clip.avi"
        out = tmp_path / "out"
        proc = run_cli("-w", workspace.root, "predict", url, f"file://{clip}", "-o", out)
    finally:
        server.shutdown()
        server.server_close()
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["clip.avi", "clip_2.avi", "predictions.jsonl"]
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    assert len(lines) == 6 and {line["drawn"] for line in lines} == {"clip.avi", "clip_2.avi"}


# 2 -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [
    ["--backend", "torch", "--half"],            # half precision needs CUDA
    ["--compile"],                               # torch.compile is for the torch backend on CUDA
    ["--device", "cuda"],                        # no GPU here
    ["--backend", "onnxruntime", "--device", "0"],
])
def test_row_02_a_refused_infer_changes_no_file(workspace, argv):
    before = _snapshot(workspace.root)
    proc = run_cli("-w", workspace.root, "infer", *argv)
    assert proc.returncode in (2, 3, 4), proc.stderr
    assert "Traceback" not in proc.stderr
    assert _snapshot(workspace.root) == before


# 3 -------------------------------------------------------------------------------------------
def test_row_03_predict_never_draws_over_its_sources(workspace, tmp_path):
    photos = copy_sample_images(tmp_path / "photos")
    before = _snapshot(photos)
    proc = run_cli("-w", workspace.root, "predict", photos, "-o", photos, "--exist-ok")
    assert_clean_failure(proc, "astronaut.png is a source in the output folder", code=2)
    assert _snapshot(photos) == before
    # only the pictures are drawn there: predictions alone may go beside the photos
    proc = run_cli("-w", workspace.root, "predict", photos, "-o", photos, "--exist-ok", "--no-save-images")
    assert proc.returncode == 0, proc.stderr
    assert {k: v for k, v in _snapshot(photos).items() if k != "predictions.jsonl"} == before


# 4 -------------------------------------------------------------------------------------------
def test_row_04_an_fpn_model_takes_its_heads_checkpoint(workspace, tmp_path, checkpoint):
    other_ws = tmp_path / "elsewhere"  # no export record there: the heads must be named
    image = DATA / "coffee.png"
    proc = run_cli("-w", other_ws, "predict", image, "--model", workspace.default_onnx, "-o", tmp_path / "a")
    assert_clean_failure(proc, "prediction heads run on the host", "--weights", code=3)
    proc = run_cli("-w", other_ws, "predict", image, "--model", workspace.default_onnx,
                   "--weights", checkpoint(MBV2), "-o", tmp_path / "b")
    assert proc.returncode == 0, proc.stderr
    # the same as the workspace's own model with export's heads
    proc = run_cli("-w", workspace.root, "predict", image, "-o", tmp_path / "c")
    assert proc.returncode == 0, proc.stderr
    drawn = [json.loads((tmp_path / d / "predictions.jsonl").read_text())["detections"] for d in "bc"]
    assert drawn[0] == drawn[1]
    # heads of another checkpoint are refused, naming both
    proc = run_cli("-w", other_ws, "predict", image, "--model", workspace.default_onnx,
                   "--weights", checkpoint(MBV2, seed=1), "-o", tmp_path / "d")
    assert_clean_failure(proc, "was computed from", "host-side heads", code=3)


# 6 -------------------------------------------------------------------------------------------
def test_row_06_bad_arguments_are_usage_or_input_errors(workspace, tmp_path, checkpoint):
    weights = checkpoint(MBV2)
    assert_clean_failure(run_cli("-w", tmp_path / "a", "export", "--weights", weights, "--config", "nosuch"),
                         "unknown config 'nosuch'", code=2)
    assert not (tmp_path / "a").exists()  # a refused command leaves no workspace behind
    assert_clean_failure(run_cli("-w", tmp_path / "b", "export", "--weights", weights, "--opset", "99"),
                         "opset 99", "--opset 11", code=2)
    corrupt = tmp_path / "corrupt.onnx"
    corrupt.write_bytes(bytes(range(256)) * 4)
    assert_clean_failure(run_cli("-w", workspace.root, "infer", "--model", corrupt, "--run", "corrupt"),
                         "corrupt.onnx", code=3)
    (tmp_path / "adir").mkdir()
    assert_clean_failure(run_cli("random-weights", "-o", tmp_path / "adir"), "is a folder, not a file", code=2)
    assert_clean_failure(run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "-b", "1000000000000",
                                 "-o", tmp_path / "p"), "--batch-size 1000000000000 needs", code=2)


# 8 -------------------------------------------------------------------------------------------
def test_row_08_skip_bad_with_nothing_good_is_still_a_failure(workspace, tmp_path):
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"not a jpeg")
    proc = run_cli("-w", workspace.root, "predict", bad, "--skip-bad", "-o", tmp_path / "out" / "sub")
    assert_clean_failure(proc, "none of the 1 source(s) could be run: ", "bad.jpg (cannot decode image", code=3)
    assert not (tmp_path / "out").exists()  # no empty predictions.jsonl, no folder


# 9, 10 ---------------------------------------------------------------------------------------
def test_rows_09_10_streaming_eval_lists_bad_images_and_sizes_as_prep_does(workspace, tmp_path):
    images = copy_sample_images(tmp_path / "images")
    coco = json.loads(MINI_ANNOTATIONS.read_text())
    first = coco["images"][0]
    first["width"], first["height"] = first["height"], first["width"]  # swapped in the annotation
    (tmp_path / "swapped.json").write_text(json.dumps(coco))
    proc = run_cli("-w", workspace.root, "--json", "eval", "--images", images,
                   "--annotations", tmp_path / "swapped.json", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "1 image(s) differ in size from their annotations" in proc.stderr
    assert [m["file"] for m in json.loads(proc.stdout)["size_mismatches"]] == [first["file_name"]]
    entry = json.loads(workspace.manifest_path.read_text())["steps"]["eval"]
    assert [m["id"] for m in entry["size_mismatches"]] == [first["id"]]

    corrupt = coco["images"][1]["file_name"]
    (images / corrupt).write_bytes(b"\x89PNG broken")
    proc = run_cli("-w", workspace.root, "eval", "--images", images, "--annotations", MINI_ANNOTATIONS,
                   "--workers", "1")
    assert_clean_failure(proc, "1 image(s) could not be read", corrupt, "--skip-bad", code=3)
    proc = run_cli("-w", workspace.root, "--json", "eval", "--images", images, "--annotations", MINI_ANNOTATIONS,
                   "--workers", "1", "--skip-bad")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["images"] == 1 and [Path(b["file"]).name for b in result["bad"]] == [corrupt]


# 11 ------------------------------------------------------------------------------------------
def test_row_11_a_rerun_removes_what_a_killed_run_left(workspace, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    leftovers = [".clip.tmp.mp4", ".predictions.jsonl.k3j2.tmp", ".coffee.png.x9a1.tmp"]
    for name in leftovers:
        (out / name).write_bytes(b"half")
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "-o", out, "--exist-ok")
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in out.iterdir()) == ["coffee.png", "predictions.jsonl"]


# 12 ------------------------------------------------------------------------------------------
def test_row_12_prep_refuses_float32_in_nhwc(tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "prep", "--images", copy_sample_images(tmp_path / "images"),
                   "--annotations", MINI_ANNOTATIONS, "--layout", "nhwc")
    assert_clean_failure(proc, "--layout nhwc stores uint8 pixels", "--dtype uint8", code=2)
    assert not (tmp_path / "ws").exists() or not (tmp_path / "ws" / "inputs").exists()


# 13 ------------------------------------------------------------------------------------------
@pytest.mark.parametrize("argv", [["--bg-bias", "inf"], ["--conf-gain", "nan"], ["--mask-bias", "-inf"],
                                  ["--bg-bias", "1e39"]])  # finite, but not in float32
def test_row_13_random_weights_refuses_non_finite_constants(tmp_path, argv):
    proc = run_cli("random-weights", "-o", tmp_path / "r.pth", "--config", MBV2, *argv)
    assert_clean_failure(proc, argv[0], "finite", code=2)
    assert not (tmp_path / "r.pth").exists()


def test_row_13_an_empty_name_is_refused(workspace, tmp_path):
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--name", "")
    assert_clean_failure(proc, "--name '' is not a plain folder name", code=2)


# 15 ------------------------------------------------------------------------------------------
def test_row_15_messages_say_what_is_wrong(workspace, tmp_path, checkpoint):
    images = copy_sample_images(tmp_path / "images")
    assert_clean_failure(run_cli("-w", tmp_path / "a", "prep", "--images", images, "--annotations", images),
                         "is a folder, not an annotation file", code=3)
    assert_clean_failure(run_cli("-w", tmp_path / "a", "prep", "--images", images / "coffee.png",
                                 "--annotations", MINI_ANNOTATIONS), "is a file, not a folder of images", code=3)
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--engine", "ray",
                   "--ray-address", "garbage", "-o", tmp_path / "r")
    assert_clean_failure(proc, "--ray-address garbage: not HOST:PORT", code=2)
    truncated = tmp_path / "cut.pth"
    truncated.write_bytes(checkpoint(MBV2).read_bytes()[:200_000])
    line = assert_clean_failure(run_cli("-w", tmp_path / "b", "export", "--weights", truncated), code=3)
    reason = line.split("(truncated or corrupt: ", 1)[1].split(")")[0]
    assert reason.endswith(" …") or len(reason) < 120  # shortened at a word, never mid-word


def test_row_15_an_interrupted_export_says_nothing_was_written(tmp_path, checkpoint, monkeypatch):
    from yolact_edge_cli.steps import export

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(export, "run", interrupted)
    proc = run_cli("-w", tmp_path / "ws", "export", "--weights", checkpoint(MBV2))
    assert_clean_failure(proc, "nothing was written", code=130)
    assert "resume" not in proc.stderr


# 16 ------------------------------------------------------------------------------------------
def test_row_16_skipped_files_are_named_and_each_record_names_its_drawing(workspace, tmp_path):
    photos = copy_sample_images(tmp_path / "photos")
    sub = photos / "more"
    sub.mkdir()
    cv2.imwrite(str(sub / "coffee.png"), np.full((40, 60, 3), 90, np.uint8))  # a second coffee.png
    (photos / "anim.gif").write_bytes(b"GIF89a")
    (photos / "notes.txt").write_text("hi")
    out = tmp_path / "out"
    proc = run_cli("-w", workspace.root, "--json", "predict", photos, "--recursive", "-o", out)
    assert proc.returncode == 0, proc.stderr
    assert "skipped" in proc.stderr and "anim.gif" in proc.stderr and "notes.txt" in proc.stderr
    result = json.loads(proc.stdout)
    assert sorted(Path(s["source"]).name for s in result["skipped"]) == ["anim.gif", "notes.txt"]
    lines = [json.loads(line) for line in (out / "predictions.jsonl").read_text().splitlines()]
    drawn = {Path(line["source"]).relative_to(photos).as_posix(): line["drawn"] for line in lines}
    assert drawn == {"astronaut.png": "astronaut.png", "coffee.png": "coffee.png", "more/coffee.png": "coffee_2.png"}
    assert all((out / name).is_file() for name in drawn.values())
