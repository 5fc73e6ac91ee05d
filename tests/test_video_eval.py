"""Streaming eval of a video model on per-frame annotations (docs/video.md §6): frames grouped per
video and ordered by frame, the keyframe schedule applied, category ids of the model's label set."""
import json

import pytest

from yolact_edge_cli.model.config import YOUTUBE_VIS

from .conftest import DATA, MINI_ANNOTATIONS, assert_clean_failure, clone_workspace, run_cli
from .test_video_predict import write_sequence

pytestmark = pytest.mark.slow  # whole video workflows (the model itself: test_video_model)

FRAMES = 4


def _annotations(folder, clips: dict[int, str], video_ids: bool = True) -> dict:
    """Per-frame annotations of the clips in `folder`, listed last frame first (eval must order
    them by frame_id): a person box and a truck box on every frame."""
    images, annotations = [], []
    for video_id, name in clips.items():
        for frame in reversed(range(FRAMES)):
            image_id = video_id * 100 + frame
            image = {"id": image_id, "file_name": f"{name}/frame_{frame:03d}.png", "width": 512, "height": 512}
            if video_ids:
                image |= {"video_id": video_id, "frame_id": frame}
            images.append(image)
            for k, (category, box) in enumerate(((1, [100, 60, 200, 300]), (29, [105, 470, 30, 40]))):
                x, y, w, h = box
                annotations.append({"id": image_id * 10 + k, "image_id": image_id, "category_id": category,
                                    "bbox": box, "area": w * h, "iscrowd": 0,
                                    "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{"id": i, "name": n} for i, n in zip(YOUTUBE_VIS.category_ids, YOUTUBE_VIS.names)]
    return {"images": images, "annotations": annotations, "categories": categories}


@pytest.fixture(scope="module")
def frames(tmp_path_factory):
    root = tmp_path_factory.mktemp("vis")
    write_sequence(root / "a", FRAMES)
    write_sequence(root / "b", FRAMES, step=(3, 1))
    for video_ids in (True, False):
        name = "per_frame.json" if video_ids else "images.json"
        (root / name).write_text(json.dumps(_annotations(root, {1: "a", 2: "b"}, video_ids)))
    return root


def _eval(ws, frames, annotations: str, *extra):
    proc = run_cli("-w", ws.root, "eval", "--images", frames, "--annotations", frames / annotations,
                   "--json", *extra)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def _results(ws) -> list[dict]:
    return json.loads(next(ws.results_dir.glob("*/bbox_detections.json")).read_text())


@pytest.fixture(scope="module")
def every_third(video_ws, frames, tmp_path_factory):
    """(workspace, eval's JSON): the clips evaluated once with --keyframe-interval 3, in a
    workspace of their own, for the tests that read that run."""
    ws = clone_workspace(video_ws, tmp_path_factory.mktemp("every-third") / "ws")
    return ws, _eval(ws, frames, "per_frame.json", "--keyframe-interval", "3")


def test_frames_run_per_video_with_the_keyframe_schedule(every_third):
    ws, result = every_third
    assert (result["images"], result["videos"], result["keyframes"]) == (2 * FRAMES, 2, 4)  # frames 0 and 3
    assert result["keyframe_interval"] == 3
    entries = _results(ws)
    assert {e["category_id"] for e in entries} <= set(YOUTUBE_VIS.category_ids)
    assert [e["image_id"] for e in entries] == sorted(
        (e["image_id"] for e in entries), key=lambda i: (i // 100, i % 100))  # per video, in frame order


@pytest.mark.slow
def test_show_draws_a_video_models_results(every_third):
    """Its category ids (truck is 29, which COCO lacks) are named from YouTube-VIS."""
    ws, _ = every_third
    proc = run_cli("-w", ws.root, "show", "--num-images", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["detections_drawn"] > 0


@pytest.mark.slow
def test_eval_results_are_predicts_detections_of_the_same_frames(every_third, frames, tmp_path):
    """The keyframe schedule runs the same on a video's frames in eval and in predict --sequence."""
    ws, _ = every_third
    entries = _results(ws)
    proc = run_cli("-w", ws.root, "predict", frames / "a", "--sequence", "--keyframe-interval", "3",
                   "-o", tmp_path / "p", "--no-save-video")
    assert proc.returncode == 0, proc.stderr
    for line in map(json.loads, (tmp_path / "p" / "predictions.jsonl").read_text().splitlines()):
        ours = [(e["category_id"], e["bbox"], round(e["score"], 6)) for e in entries
                if e["image_id"] == 100 + line["frame"] and e["score"] >= 0.3]
        theirs = [(d["category_id"], [float(d["box"][0]), float(d["box"][1]), float(d["box"][2] - d["box"][0]),
                                      float(d["box"][3] - d["box"][1])], round(d["score"], 6))
                  for d in line["detections"]]
        assert ours == theirs and line["keyframe"] == (line["frame"] % 3 == 0)


@pytest.mark.slow
def test_interval_1_is_the_image_mode_figure(video_ws, frames):
    """--keyframe-interval 1 runs every frame as a keyframe: the metrics of the same frames
    annotated as plain images (each a still, so a keyframe)."""
    per_frame = _eval(video_ws, frames, "per_frame.json", "--keyframe-interval", "1")
    assert per_frame["keyframes"] == 2 * FRAMES
    images = _eval(video_ws, frames, "images.json")
    assert images["videos"] == 0 and per_frame["coco"] == images["coco"]
    assert per_frame["yolact_ap"] == images["yolact_ap"]
    scheduled = _eval(video_ws, frames, "per_frame.json")  # the default, every 5th frame
    assert scheduled["keyframes"] == 2 and scheduled["coco"] != per_frame["coco"]


@pytest.mark.slow
def test_label_sets_must_match(video_ws, frames, r50_workspace_for_labels):
    proc = run_cli("-w", video_ws.root, "eval", "--images", DATA, "--annotations", MINI_ANNOTATIONS)
    assert_clean_failure(proc, "not the model's YouTube-VIS classes")
    proc = run_cli("-w", r50_workspace_for_labels.root, "eval", "--images", frames,
                   "--annotations", frames / "per_frame.json")
    assert_clean_failure(proc, "not the model's COCO classes")


def test_keyframe_interval_needs_streaming(video_ws):
    proc = run_cli("-w", video_ws.root, "eval", "--keyframe-interval", "3")
    assert_clean_failure(proc, "--keyframe-interval", code=2)


@pytest.fixture(scope="module")
def r50_workspace_for_labels(exported, tmp_path_factory):
    return exported(tmp_path_factory.mktemp("r50-labels") / "ws", layout="detect")
