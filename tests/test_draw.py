"""predict's drawing options (docs/commands.md, predict): colours by class or identity, box line
width, labels with or without scores; and --classes by index."""
import json

import cv2
import numpy as np
import pytest

from yolact_edge_cli.draw import DrawStyle, colour, draw_detections

from .conftest import DATA, assert_clean_failure, run_cli

BLANK = np.full((120, 200, 3), 255, np.uint8)


def _detection(box, category_id: int, score: float = 0.87, track_id=None) -> dict:
    height, width = BLANK.shape[:2]
    from pycocotools import mask as mask_utils

    rle = mask_utils.encode(np.asfortranarray(np.zeros((height, width), np.uint8)))
    detection = {"class": f"c{category_id}", "category_id": category_id, "score": score, "box": box,
                 "mask": {"size": rle["size"], "counts": rle["counts"].decode()}}
    return detection | ({"track_id": track_id} if track_id is not None else {})


def _edge(picture, x: int, y0: int, y1: int) -> tuple:
    """The colour of a box's left edge, at its middle."""
    return tuple(int(v) for v in picture[(y0 + y1) // 2, x])


def test_colours_follow_the_class_and_the_identity():
    same = draw_detections(BLANK, [_detection([10, 40, 60, 100], 3), _detection([120, 40, 180, 100], 3)])
    assert _edge(same, 10, 40, 100) == _edge(same, 120, 40, 100) == colour(3)
    other = draw_detections(BLANK, [_detection([10, 40, 60, 100], 3), _detection([120, 40, 180, 100], 5)])
    assert _edge(other, 120, 40, 100) == colour(5) != colour(3)
    tracked = draw_detections(BLANK, [_detection([10, 40, 60, 100], 3, track_id=7)])
    assert _edge(tracked, 10, 40, 100) == colour(7)


@pytest.mark.parametrize("width", [0, 1, 4])
def test_line_width(width):
    picture = draw_detections(BLANK, [_detection([40, 40, 160, 100], 3)], DrawStyle(line_width=width, labels=False))
    column = picture[70, :, :]  # across the box's left and right edges, below any label
    drawn = int((column != 255).any(axis=1).sum())
    assert drawn == 2 * width if width < 2 else drawn in (2 * width, 2 * width + 2)


def test_labels_and_scores_can_be_hidden():
    detections = [_detection([40, 40, 160, 100], 3)]
    label_rows = slice(20, 39)  # above the box, where the label is written

    def ink(style):
        return int((draw_detections(BLANK, detections, style)[label_rows] != 255).any(axis=2).sum())

    full, no_score, none = ink(DrawStyle()), ink(DrawStyle(confidence=False)), ink(DrawStyle(labels=False))
    assert full > no_score > none == 0


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    return prepared(tmp_path_factory.mktemp("draw") / "ws", "yolact_edge_mobilenetv2_config")


def test_predict_passes_the_options_and_classes_by_index(workspace, tmp_path):
    from yolact_edge_cli.model.config import COCO

    photo = DATA / "coffee.png"
    out = {}
    for name, extra in (("plain", []), ("thin", ["--line-width", "0", "--hide-labels"])):
        proc = run_cli("-w", workspace.root, "predict", photo, "-o", tmp_path / name, *extra)
        assert proc.returncode == 0, proc.stderr
        out[name] = cv2.imread(str(tmp_path / name / "coffee.png"))
    assert not np.array_equal(out["plain"], out["thin"])
    lines = json.loads((tmp_path / "plain" / "predictions.jsonl").read_text().splitlines()[0])["detections"]
    first = lines[0]["category_id"]
    class_index = COCO.category_ids.index(first)  # the first detection's class, by its index
    proc = run_cli("-w", workspace.root, "predict", photo, "-o", tmp_path / "by-index", "--classes", str(class_index))
    assert proc.returncode == 0, proc.stderr
    kept = json.loads((tmp_path / "by-index" / "predictions.jsonl").read_text().splitlines()[0])["detections"]
    assert kept and {d["category_id"] for d in kept} == {first}
    proc = run_cli("-w", workspace.root, "predict", photo, "-o", tmp_path / "bad", "--classes", "80")
    assert_clean_failure(proc, "class index 80 is out of range 0–79", "docs/model.md §12")


def _jsonl(folder) -> list[dict]:
    return [json.loads(line) for line in (folder / "predictions.jsonl").read_text().splitlines()]


def _box_iou(a, b) -> float:
    x1, y1, x2, y2 = max(a[0], b[0]), max(a[1], b[1]), min(a[2], b[2]), min(a[3], b[3])
    inter = max(0, x2 - x1) * max(0, y2 - y1)
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return inter / union if union else 0.0


@pytest.mark.slow
def test_iou_sets_the_nms_threshold(workspace, prepared, tmp_path):
    photo = DATA / "coffee.png"
    for name, extra in (("default", []), ("tight", ["--iou", "0.2"])):
        proc = run_cli("-w", workspace.root, "predict", photo, "-o", tmp_path / name, "--no-save-images", *extra)
        assert proc.returncode == 0, proc.stderr
    default, tight = (_jsonl(tmp_path / name)[0]["detections"] for name in ("default", "tight"))
    assert default != tight
    overlaps = [_box_iou(a["box"], b["box"]) for k, a in enumerate(tight) for b in tight[k + 1:]
                if a["category_id"] == b["category_id"]]
    assert max(overlaps) <= 0.2 + 0.05  # whole-pixel boxes: a little above the threshold at most
    assert max(_box_iou(a["box"], b["box"]) for k, a in enumerate(default) for b in default[k + 1:]
               if a["category_id"] == b["category_id"]) > 0.25
    detect = prepared(tmp_path / "detect", "yolact_edge_mobilenetv2_config", layout="detect")
    proc = run_cli("-w", detect.root, "predict", photo, "-o", tmp_path / "d", "--iou", "0.2")
    assert_clean_failure(proc, "--iou 0.2", "detect layout", code=2)


def test_save_txt_and_masks(workspace, tmp_path):
    from yolact_edge_cli.draw import decode_rle
    from yolact_edge_cli.model.config import COCO

    proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "-o", tmp_path / "o",
                   "--save-txt", "--save-masks", "--no-save-images")
    assert proc.returncode == 0, proc.stderr
    detections = _jsonl(tmp_path / "o")[0]["detections"]
    rows = (tmp_path / "o" / "labels" / "coffee.txt").read_text().splitlines()
    with_outline = [d for d in detections if decode_rle(d["mask"]).any()]
    assert len(rows) == len(with_outline) > 0
    for row, detection in zip(rows, with_outline):
        index, *coordinates = row.split()
        assert int(index) == COCO.category_ids.index(detection["category_id"])
        values = np.array(coordinates, float)
        assert len(values) >= 6 and len(values) % 2 == 0 and values.min() >= 0 and values.max() <= 1
    for k, detection in enumerate(detections):
        png = cv2.imread(str(tmp_path / "o" / "masks" / f"coffee_{k}.png"), cv2.IMREAD_GRAYSCALE)
        np.testing.assert_array_equal(png, decode_rle(detection["mask"]) * 255)
