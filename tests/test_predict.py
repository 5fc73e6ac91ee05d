"""`yedge predict` on people's own images and videos: the streaming pipeline (decode and
post-process in worker processes, results in source order), the overlays, videos and
predictions.jsonl — equal, detection for detection, to what prep → infer → eval gives."""
import json
import struct
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact_edge_cli.steps import evaluate

from .conftest import DATA, MINI_ANNOTATIONS, assert_clean_failure, copy_sample_images, run_cli

pytestmark = pytest.mark.slow

MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    """The mobilenet workspace prep → infer ran on (the two sample photos), then eval."""
    ws = prepared(tmp_path_factory.mktemp("predict") / "ws", MBV2)
    evaluate.run(ws, evaluate.EvalOptions(workers=1))
    return ws


def _lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _video(path: Path, frames: int = 30, fps: float = 12.0, size=(160, 120)) -> Path:
    """A short mp4 written by OpenCV: grey ramps, with the two sample photos as frames 5 and 20."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), fps, size)
    photos = {5: cv2.imread(str(DATA / "astronaut.png")), 20: cv2.imread(str(DATA / "coffee.png"))}
    for i in range(frames):
        frame = cv2.resize(photos[i], size) if i in photos else np.full((size[1], size[0], 3), i * 8, np.uint8)
        writer.write(frame)
    writer.release()
    return path


def _frames(path: Path) -> tuple[int, float, tuple[int, int]]:
    capture = cv2.VideoCapture(str(path))
    fps, size = capture.get(cv2.CAP_PROP_FPS), (int(capture.get(3)), int(capture.get(4)))
    count = 0
    while capture.read()[0]:
        count += 1
    capture.release()
    return count, fps, size


@pytest.mark.exactness
def test_predictions_equal_eval_detection_for_detection(workspace, tmp_path):
    """Same model, same images: every detection eval wrote (class, score, box, RLE) is a line
    of predictions.jsonl, in the same order."""
    images = copy_sample_images(tmp_path / "photos")
    proc = run_cli("-w", workspace.root, "--json", "predict", images, "--score-threshold", "0",
                   "--workers", "1", "-o", tmp_path / "out")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert (result["images"], result["frames"], result["failed"]) == (2, 0, [])
    coco = json.loads(MINI_ANNOTATIONS.read_text())
    ids = {image["file_name"]: image["id"] for image in coco["images"]}
    boxes = json.loads((workspace.results_dir / "bbox_detections.json").read_text())
    masks = json.loads((workspace.results_dir / "mask_detections.json").read_text())
    lines = _lines(tmp_path / "out" / "predictions.jsonl")
    assert [Path(line["source"]).name for line in lines] == ["astronaut.png", "coffee.png"]
    total = 0
    for line in lines:
        image_id = ids[Path(line["source"]).name]
        theirs = [(b["category_id"], b["score"], b["bbox"], m["segmentation"]) for b, m in zip(boxes, masks)
                  if b["image_id"] == image_id]
        ours = [(d["category_id"], d["score"], [float(d["box"][0]), float(d["box"][1]),
                                                float(d["box"][2] - d["box"][0]), float(d["box"][3] - d["box"][1])],
                 d["mask"]) for d in line["detections"]]
        assert ours == theirs and len(ours) > 0
        total += len(ours)
        picture = cv2.imread(line["source"])
        assert (line["width"], line["height"]) == (picture.shape[1], picture.shape[0])
        drawn = cv2.imread(str(tmp_path / "out" / Path(line["source"]).name))
        assert drawn.shape == picture.shape and not np.array_equal(drawn, picture)
    assert result["detections"] == total


def test_a_video_comes_back_annotated_frame_for_frame(workspace, tmp_path):
    clip = _video(tmp_path / "clip.mp4")
    images = copy_sample_images(tmp_path / "photos")
    proc = run_cli("-w", workspace.root, "--json", "predict", clip, images / "coffee.png",
                   "--classes", "person,cup,dog,cat,car", "--top-k", "5", "--name", "mixed")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    out = workspace.root / "predict" / "mixed"
    assert result["output"] == str(out) and (result["images"], result["frames"]) == (1, 30)
    assert _frames(out / "clip.mp4") == (30, 12.0, (160, 120))
    assert (out / "coffee.png").is_file()
    lines = _lines(out / "predictions.jsonl")
    assert [line["frame"] for line in lines] == [*range(30), None]
    assert all((line["width"], line["height"]) == (160, 120) for line in lines[:30])
    names = {d["class"] for line in lines for d in line["detections"]}
    assert names <= {"person", "cup", "dog", "cat", "car"}
    assert all(len(line["detections"]) <= 5 and all(d["score"] > 0.3 for d in line["detections"])
               for line in lines)
    assert not [p for p in out.iterdir() if p.name.startswith(".")]  # no temporary file left


def test_vid_stride_runs_every_nth_frame_and_keeps_the_sources_numbers(workspace, tmp_path):
    clip = _video(tmp_path / "clip.mp4", frames=11)
    whole = run_cli("-w", workspace.root, "predict", clip, "-o", tmp_path / "whole")
    strided = run_cli("-w", workspace.root, "--json", "predict", clip, "--vid-stride", "3", "-o", tmp_path / "strided")
    assert whole.returncode == 0 and strided.returncode == 0, whole.stderr + strided.stderr
    assert json.loads(strided.stdout)["frames"] == 4  # frames 0, 3, 6, 9 of 11
    every, kept = _lines(tmp_path / "whole" / "predictions.jsonl"), _lines(tmp_path / "strided" / "predictions.jsonl")
    assert [line["frame"] for line in kept] == [0, 3, 6, 9]
    assert [line["timestamp"] for line in kept] == [round(n / 12.0, 6) for n in (0, 3, 6, 9)]
    # each frame that ran gives what it gives in the whole run: only which frames run changes
    assert [line["detections"] for line in kept] == [every[n]["detections"] for n in (0, 3, 6, 9)]
    assert _frames(tmp_path / "strided" / "clip.mp4") == (4, 4.0, (160, 120))  # plays at 12 / 3 fps


def _exif_rotated_jpeg(path: Path) -> Path:
    """A 40×20 JPEG whose EXIF says "rotate 90° clockwise" (orientation 6): cv2.imread gives 20×40."""
    ok, data = cv2.imencode(".jpg", np.tile(np.arange(40, dtype=np.uint8) * 6, (20, 1))[:, :, None].repeat(3, 2))
    tiff = b"II*\x00\x08\x00\x00\x00" + b"\x01\x00" + b"\x12\x01\x03\x00\x01\x00\x00\x00\x06\x00\x00\x00" + b"\x00" * 4
    segment = b"Exif\x00\x00" + tiff
    raw = data.tobytes()
    path.write_bytes(raw[:2] + b"\xff\xe1" + struct.pack(">H", len(segment) + 2) + segment + raw[2:])
    return path


def test_every_kind_of_image_opencv_reads_and_the_bad_ones_listed(workspace, tmp_path):
    """Grayscale, alpha, 16-bit, EXIF-rotated, 1×1 and large images run with imread's pixels;
    a corrupt file, an unopenable video, a missing path and an empty folder are listed with
    their reasons while the rest still runs; exit 3 unless --skip-bad."""
    folder = tmp_path / "mixed"
    folder.mkdir()
    photo = cv2.imread(str(DATA / "coffee.png"))
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "alpha.png"), cv2.cvtColor(photo, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep.png"), photo.astype(np.uint16) * 257)
    cv2.imwrite(str(folder / "tiny.png"), photo[:1, :1])
    cv2.imwrite(str(folder / "large.jpg"), cv2.resize(photo, (2400, 1600)))
    _exif_rotated_jpeg(folder / "rotated.jpg")
    (folder / "corrupt.jpg").write_bytes(b"not a picture at all")
    (folder / "broken.mp4").write_bytes(b"not a video")
    (tmp_path / "empty").mkdir()
    args = ["-w", workspace.root, "--json", "predict", folder, tmp_path / "missing.png", tmp_path / "empty",
            "--score-threshold", "0.9", "--name", "kinds"]
    proc = run_cli(*args)
    assert proc.returncode == 3
    result = json.loads(proc.stdout)  # one document: the result, with the error's keys
    assert result["exit_code"] == 3 and "4 of 10 source(s) could not be run" in result["error"]
    assert [line for line in proc.stderr.splitlines() if line.startswith("error:")] == [f"error: {result['error']}"]
    reasons = {Path(f["source"]).name: f["reason"] for f in result["failed"]}
    assert set(reasons) == {"corrupt.jpg", "broken.mp4", "missing.png", "empty"}
    assert "cannot decode" in reasons["corrupt.jpg"] and "cannot open it as a video" in reasons["broken.mp4"]
    written = _lines(workspace.root / "predict" / "kinds" / "predictions.jsonl")
    lines = {Path(line["source"]).name: line for line in written}
    assert set(lines) == {"gray.png", "alpha.png", "deep.png", "tiny.png", "large.jpg", "rotated.jpg"}
    for name, line in lines.items():
        pixels = cv2.imread(str(folder / name))
        assert (line["height"], line["width"]) == pixels.shape[:2], name
    assert (lines["rotated.jpg"]["width"], lines["rotated.jpg"]["height"]) == (20, 40)
    human = run_cli(*[a for a in args if a != "--json"], "--exist-ok")
    assert_clean_failure(human, "4 of 10 source(s) could not be run", "--skip-bad", code=3)
    assert "corrupt.jpg: cannot decode" in human.stderr
    assert run_cli(*args, "--skip-bad", "--exist-ok").returncode == 0


def test_ordering_holds_with_workers_and_a_padded_batch(tmp_path, prepared):
    """Three images through a dynamic-batch model at batch 2 (the last batch padded) with two
    workers per stage: the lines come in source order, and each image's detections are those
    of a batch-1 run with one worker."""
    ws = prepared(tmp_path / "ws", MBV2, dynamic_batch=True)
    images = copy_sample_images(tmp_path / "photos")
    cv2.imwrite(str(images / "zzz.png"), np.roll(cv2.imread(str(images / "coffee.png")), 40, axis=1))
    runs = {}
    for batch, workers in (("1", "1"), ("2", "2")):
        out = tmp_path / f"b{batch}"
        proc = run_cli("-w", ws.root, "predict", images, "--batch-size", batch, "--workers", workers,
                       "--score-threshold", "0.2", "--no-save-images", "-o", out)
        assert proc.returncode == 0, proc.stderr
        runs[batch] = _lines(out / "predictions.jsonl")
        assert not list(out.glob("*.png"))
    assert [Path(line["source"]).name for line in runs["2"]] == ["astronaut.png", "coffee.png", "zzz.png"]
    for one, two in zip(runs["1"], runs["2"]):
        assert one["source"] == two["source"]
        assert np.allclose([d["score"] for d in one["detections"]], [d["score"] for d in two["detections"]],
                           atol=1e-4)


def test_predict_needs_a_source_it_can_run_and_a_folder_of_its_own(workspace, tmp_path):
    proc = run_cli("-w", workspace.root, "predict", tmp_path / "nothing-here.jpg")
    assert_clean_failure(proc, "nothing to run", "no such file or folder", code=3)
    photo = DATA / "coffee.png"
    assert_clean_failure(run_cli("-w", workspace.root, "predict", photo, "-o", tmp_path / "o", "--name", "x"),
                         "-o and --name", code=2)
    assert_clean_failure(run_cli("-w", workspace.root, "predict", photo, "--name", "../../escape"),
                         "not a plain folder name", code=2)
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("a file of the user's")
    assert_clean_failure(run_cli("-w", workspace.root, "predict", photo, "-o", taken), "already holds files",
                         "--exist-ok", code=2)
    outputs = []
    for _ in range(2):  # the default folder is numbered when taken, never mixed with an earlier run
        proc = run_cli("-w", workspace.root, "--json", "predict", photo, "--score-threshold", "0.9")
        assert proc.returncode == 0, proc.stderr
        outputs.append(Path(json.loads(proc.stdout)["output"]).name)
    assert outputs[1] == f"{outputs[0]}_2" or outputs[1].startswith("coffee_")
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--classes", "person,unicorn")
    assert_clean_failure(proc, "unknown class name(s): unicorn", code=2)
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--top-k", "200")
    assert_clean_failure(proc, "--top-k 200: Detect keeps at most 100", code=2)
    # --weights with --model names the fpn heads' checkpoint (tests/test_new_user_trial.py, row 4)
    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--model", "m.onnx", "--weights", "w.pth")
    assert_clean_failure(proc, "m.onnx: ONNX model not found", code=3)


def test_a_video_that_stops_early_is_listed_and_not_written(workspace, tmp_path):
    """An AVI cut in half still opens and says 30 frames, but gives 7: its frames' lines are
    kept, its annotated video is not written, and it is listed with the reason (exit 3)."""
    writer = cv2.VideoWriter(str(tmp_path / "whole.avi"), cv2.VideoWriter.fourcc(*"MJPG"), 10.0, (160, 120))
    for i in range(30):
        writer.write(np.full((120, 160, 3), i * 8, np.uint8))
    writer.release()
    data = (tmp_path / "whole.avi").read_bytes()
    (tmp_path / "cut.avi").write_bytes(data[: len(data) // 2])
    proc = run_cli("-w", workspace.root, "--json", "predict", tmp_path / "cut.avi", tmp_path / "whole.avi",
                   "--name", "cut", subprocess_=True)  # FFmpeg writes below Python, to file descriptor 2
    assert proc.returncode == 3
    result = json.loads(proc.stdout)
    reasons = {Path(f["source"]).name: f["reason"] for f in result["failed"]}
    assert list(reasons) == ["cut.avi"] and reasons["cut.avi"].startswith("stopped after ")
    read = int(reasons["cut.avi"].split()[2])
    out = workspace.root / "predict" / "cut"
    assert not (out / "cut.avi").exists() and _frames(out / "whole.avi")[0] == 30
    frames = [line["frame"] for line in _lines(out / "predictions.jsonl") if line["source"].endswith("cut.avi")]
    assert frames == list(range(read)) and 0 < read < 30
    assert "dqt" not in proc.stderr and "moov" not in proc.stderr  # FFmpeg's own noise kept off the terminal


def test_a_quoted_glob_and_its_default_folder(workspace, tmp_path):
    images = copy_sample_images(tmp_path / "my photos")
    proc = run_cli("-w", workspace.root, "--json", "predict", str(images / "*.png"), "--no-save-images")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] == str(workspace.root / "predict" / "my_photos") and result["images"] == 2
    draft = images / "[draft] coffee.png"  # a file whose name looks like a glob is a file
    (images / "coffee.png").rename(draft)
    proc = run_cli("-w", workspace.root, "--json", "predict", draft, "--no-save-images")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["output"] == str(workspace.root / "predict" / "draft_coffee") and result["images"] == 1
