"""`predict` with a video model (docs/video.md §5): each video's frames in order, a keyframe
every N, the frames between through the non-keyframe graph with the latest keyframe's state."""
import json

import cv2
import numpy as np
import onnxruntime as ort
import pytest

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.host import HostPipeline, HostSpec
from yolact_edge_cli.metrics.results import Detections
from yolact_edge_cli.model.contract import KEY_STATE_NAMES, non_keyframe_graph
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, VIDEO_CONFIG, assert_clean_failure, run_cli

pytestmark = pytest.mark.slow  # whole video workflows (the model itself: test_video_model)

CONFIG = VIDEO_CONFIG
FRAMES = 7


def write_sequence(folder, frames: int = FRAMES, step: tuple[int, int] = (2, 3)):
    """A lossless clip: the astronaut moving `step` px (down, right) per frame, as PNG files."""
    folder.mkdir(parents=True)
    image = read_image(DATA / "astronaut.png")
    for i in range(frames):
        cv2.imwrite(str(folder / f"frame_{i:03d}.png"), np.roll(image, (step[0] * i, step[1] * i), axis=(0, 1)))
    return folder


@pytest.fixture(scope="module")
def clip(tmp_path_factory):
    return write_sequence(tmp_path_factory.mktemp("clips") / "clip")


def _lines(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def _by_hand(ws: Workspace, clip, interval: int, checkpoint) -> list[dict]:
    """The two graphs driven frame by frame in onnxruntime, the host part as an image's."""
    keyframe = ort.InferenceSession(str(ws.default_onnx), providers=["CPUExecutionProvider"])
    nonkey = ort.InferenceSession(str(non_keyframe_graph(ws.default_onnx)), providers=["CPUExecutionProvider"])
    names = [o.name for o in keyframe.get_outputs() if o.name not in KEY_STATE_NAMES]
    host = HostPipeline(HostSpec(config=CONFIG, weights=str(checkpoint(CONFIG)), score_threshold=0.3))
    state: list = []
    found = []
    for i, path in enumerate(sorted(clip.iterdir())):
        image = read_image(path)
        x = preprocess(image)[None]
        if i % interval == 0:
            *outputs, p4, p5, lateral = keyframe.run([*names, *KEY_STATE_NAMES], {"image": x})
            state = [p4, p5, lateral]
        else:
            outputs = nonkey.run(names, {"image": x, **dict(zip(KEY_STATE_NAMES, state))})
        found.append(Detections.of(host(outputs, image.shape[1], image.shape[0])))
    return found


@pytest.mark.parametrize("interval", [3, pytest.param(1, marks=pytest.mark.slow)])
def test_predict_equals_the_two_graphs_driven_by_hand(video_ws, clip, checkpoint, tmp_path, interval):
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--keyframe-interval", str(interval),
                   "-o", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["frames"] == FRAMES and result["keyframes"] == len(range(0, FRAMES, interval))
    lines = _lines(tmp_path / "out")
    assert [line["frame"] for line in lines] == list(range(FRAMES))
    assert [line["keyframe"] for line in lines] == [i % interval == 0 for i in range(FRAMES)]
    assert [line["timestamp"] for line in lines] == [round(i / 30.0, 6) for i in range(FRAMES)]
    for line, want in zip(lines, _by_hand(video_ws, clip, interval, checkpoint)):
        keep = [i for i in range(len(want.scores)) if want.scores[i] >= 0.3]
        assert [d["category_id"] - 1 for d in line["detections"]] == [int(want.classes[i]) for i in keep]
        assert [d["box"] for d in line["detections"]] == [[int(v) for v in want.boxes[i]] for i in keep]
        assert [d["mask"] for d in line["detections"]] == [want.rles[i] for i in keep]
        np.testing.assert_allclose([d["score"] for d in line["detections"]], want.scores[keep], atol=1e-6)
    assert (tmp_path / "out" / "clip.mp4").is_file()


def test_vid_stride_keeps_the_keyframe_schedule_on_the_frames_that_run(video_ws, clip, tmp_path):
    """Every 2nd frame of 7 runs (0, 2, 4, 6); with a keyframe every 2 of those, frames 0 and 4 are
    keyframes, and they run as the same four frames given as a sequence of their own would."""
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--vid-stride", "2",
                   "--keyframe-interval", "2", "-o", tmp_path / "strided")
    assert proc.returncode == 0, proc.stderr
    lines = _lines(tmp_path / "strided")
    assert [(line["frame"], line["keyframe"]) for line in lines] == [(0, True), (2, False), (4, True), (6, False)]
    assert [line["timestamp"] for line in lines] == [round(n / 30.0, 6) for n in (0, 2, 4, 6)]
    alone = tmp_path / "alone"
    alone.mkdir()
    for n in (0, 2, 4, 6):
        (alone / f"frame_{n:03d}.png").write_bytes((clip / f"frame_{n:03d}.png").read_bytes())
    proc = run_cli("-w", video_ws.root, "predict", alone, "--sequence", "--keyframe-interval", "2",
                   "-o", tmp_path / "alone_out")
    assert proc.returncode == 0, proc.stderr
    assert [line["detections"] for line in lines] == [line["detections"] for line in _lines(tmp_path / "alone_out")]


def test_class_names_are_the_video_models_own(video_ws, clip, tmp_path):
    """YouTube-VIS names and category ids (1–40), and --classes takes those names."""
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "-o", tmp_path / "out",
                   "--classes", "truck,tennis_racket", "--no-save-video")
    assert proc.returncode == 0, proc.stderr
    classes = {(d["class"], d["category_id"]) for line in _lines(tmp_path / "out") for d in line["detections"]}
    assert classes and classes <= {("truck", 29), ("tennis_racket", 40)}
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "-o", tmp_path / "bad",
                   "--classes", "car")
    assert_clean_failure(proc, "unknown class name(s): car", "YouTube-VIS")


def test_still_images_run_as_keyframes(video_ws, tmp_path):
    proc = run_cli("-w", video_ws.root, "predict", DATA / "astronaut.png", DATA / "coffee.png",
                   "-o", tmp_path / "out", "--json")
    assert proc.returncode == 0, proc.stderr
    lines = _lines(tmp_path / "out")
    assert [line["keyframe"] for line in lines] == [True, True]
    assert all("timestamp" not in line for line in lines)


@pytest.fixture(scope="module")
def onnx_every_fourth(video_ws, clip, tmp_path_factory):
    """predict's lines for the clip on onnxruntime with --keyframe-interval 4, run once for the
    runners compared with it."""
    out = tmp_path_factory.mktemp("onnx-every-fourth")
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--keyframe-interval", "4",
                   "-o", out, "--no-save-video")
    assert proc.returncode == 0, proc.stderr
    return _lines(out)


@pytest.mark.slow
@pytest.mark.parametrize("runner", [("--weights", "torch"), ("--backend", "openvino")])
def test_torch_and_openvino_run_the_same_schedule(video_ws, clip, checkpoint, tmp_path, runner, onnx_every_fourth):
    """torch runs the checkpoint's two passes, openvino the two graphs: onnxruntime's schedule
    and detections (the first ten classes of each frame)."""
    option, name = runner
    value = checkpoint(CONFIG) if option == "--weights" else name
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", option, value,
                   "--keyframe-interval", "4", "-o", tmp_path / name, "--no-save-video")
    assert proc.returncode == 0, proc.stderr
    ours, onnx_lines = _lines(tmp_path / name), onnx_every_fourth
    assert [line["keyframe"] for line in ours] == [i % 4 == 0 for i in range(FRAMES)]
    for line, theirs in zip(ours, onnx_lines):
        assert [d["class"] for d in line["detections"]][:10] == [d["class"] for d in theirs["detections"]][:10]


def test_bad_video_model_uses_are_refused(video_ws, clip, tmp_path):
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--model",
                   non_keyframe_graph(video_ws.default_onnx), "-o", tmp_path / "a")
    assert_clean_failure(proc, "non-keyframe graph", "yolact_edge.onnx")
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--keyframe-interval", "0",
                   "-o", tmp_path / "b")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    proc = run_cli("-w", video_ws.root, "predict", tmp_path / "nothing-here", "--sequence", "-o", tmp_path / "c")
    assert_clean_failure(proc, "nothing-here", "no image files in this sequence")


@pytest.mark.ray
def test_ray_keeps_each_video_on_one_replica_and_equals_local(video_ws, tmp_path):
    """Two clips on two replicas: a frame run by a replica without its video's state would run
    as a keyframe, so the keyframe flags show that no video was split; the detections are the
    local engine's."""
    clips = [write_sequence(tmp_path / "a", 6), write_sequence(tmp_path / "b", 6, step=(3, 1))]
    args = ["-w", video_ws.root, "predict", *clips, "--sequence", "--keyframe-interval", "3",
            "--no-save-video", "--workers", "1"]
    proc = run_cli(*args, "-o", tmp_path / "local")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(*args, "-o", tmp_path / "ray", "--engine", "ray", "--replicas", "2", subprocess_=True)
    assert proc.returncode == 0, proc.stderr
    local, ray = _lines(tmp_path / "local"), _lines(tmp_path / "ray")
    assert [line["keyframe"] for line in ray] == [i % 3 == 0 for i in range(6)] * 2
    assert ray == local


@pytest.mark.slow
def test_bench_times_both_passes_and_the_schedule(video_ws):
    proc = run_cli("-w", video_ws.root, "bench", "--batch-sizes", "1", "--loop", "3", "--warmup", "0",
                   "--keyframe-interval", "2", "--json")
    assert proc.returncode == 0, proc.stderr
    video = json.loads(proc.stdout)["video"]
    assert (video["interval"], video["frames"], video["keyframes"]) == (2, 3, 2)  # frames 0 and 2
    assert video["keyframe_ms"] > 0 and video["non_keyframe_ms"] > 0
    assert video["ratio"] == pytest.approx(video["non_keyframe_ms"] / video["keyframe_ms"], abs=2e-3)
    assert video["every_frame_key_per_s"] == pytest.approx(1000 / video["keyframe_ms"], abs=0.01)


def test_tracks_keep_identities_of_moving_shapes():
    """Two shapes moving across 12 frames, one hidden for three of them, and a third appearing
    late: each keeps one identity, and the three differ. (ByteTrack confirms a track that starts
    after the first frame on its second frame: the late one has none on its first.)"""
    from yolact_edge_cli.track import VideoTracks

    tracks = VideoTracks(fps=30)
    seen: dict[str, list] = {"left": [], "down": [], "late": []}
    for frame in range(12):
        shapes = {"left": [10 + 6 * frame, 20, 70 + 6 * frame, 80],
                  "down": [300, 40 + 5 * frame, 380, 120 + 5 * frame]}
        if 4 <= frame < 7:
            del shapes["down"]  # hidden, then found again
        if frame >= 8:
            shapes["late"] = [150, 300, 200 + 2 * frame, 360]
        detections = [{"box": box, "score": 0.9, "category_id": 1} for box in shapes.values()]
        for name, track_id in zip(shapes, tracks.update(detections)):
            seen[name].append(track_id)
    assert seen["late"][0] is None
    seen["late"] = seen["late"][1:]
    assert all(len(set(ids)) == 1 and None not in ids for ids in seen.values()), seen
    assert len({ids[0] for ids in seen.values()}) == 3 and len(seen["down"]) == 9


@pytest.mark.slow
def test_predict_track_adds_identities_and_changes_nothing_else(video_ws, clip, tmp_path):
    base = ["-w", video_ws.root, "predict", clip, "--sequence", "--no-save-video", "--score-threshold", "0.5"]
    proc = run_cli(*base, "-o", tmp_path / "plain")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli(*base, "-o", tmp_path / "tracked", "--track", "--json")
    assert proc.returncode == 0, proc.stderr
    tracked, plain = _lines(tmp_path / "tracked"), _lines(tmp_path / "plain")
    ids = {d["track_id"] for line in tracked for d in line["detections"]} - {None}
    assert ids and json.loads(proc.stdout)["tracks"] == len(ids)
    for ours, theirs in zip(tracked, plain):
        assert [{k: v for k, v in d.items() if k != "track_id"} for d in ours["detections"]] == theirs["detections"]
    # the astronaut moves 2-3 px a frame: identities link frames (stability itself: the test above)
    frames_of = {i: sum(i in {d["track_id"] for d in line["detections"]} for line in tracked) for i in ids}
    assert max(frames_of.values()) >= 3


def test_track_without_supervision_says_how_to_install(video_ws, clip, tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "supervision", None)
    proc = run_cli("-w", video_ws.root, "predict", clip, "--sequence", "--track", "-o", tmp_path / "x")
    assert_clean_failure(proc, "--track needs supervision", "yedge[track]")
    assert not (tmp_path / "x").exists()
