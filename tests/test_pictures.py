"""eval's and bench's pictures (docs/pictures.md): the arrays they are drawn from equal what
COCOeval computed, the confusion matrix counts a hand-made case right, and the files appear
(or not, with --no-plots) where the docs say."""
import contextlib
import io
import json

import cv2
import numpy as np
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

from yolact_edge_cli import plots
from yolact_edge_cli.data.coco import load_coco
from yolact_edge_cli.metrics import coco_eval
from yolact_edge_cli.metrics.confusion import ConfusionMatrix
from yolact_edge_cli.metrics.curves import per_class_table
from yolact_edge_cli.model.config import COCO as COCO_LABELS
from yolact_edge_cli.steps import evaluate
from yolact_edge_cli.workspace import (
    BENCH_LATENCY_PNG,
    BENCH_STAGES_PNG,
    BENCH_THROUGHPUT_PNG,
    CONFUSION_PNG,
    CURVES_DATA,
    PER_CLASS_AP_PNG,
    PR_PNG,
    SCORES_PNG,
)

from .conftest import DATA, run_cli

MINI = DATA / "golden" / "eval_mini"
ANNOTATIONS = MINI / "instances_mini.json"
RESULTS = {"bbox": MINI / "fast_bbox.json", "segm": MINI / "fast_mask.json"}
IMAGE_IDS = [2, 1]


def _cocoeval(iou_type: str, categories: list[int] | None = None) -> COCOeval:
    with contextlib.redirect_stdout(io.StringIO()):
        gt = COCO(str(ANNOTATIONS))
        evaluator = COCOeval(gt, gt.loadRes(str(RESULTS[iou_type])), iou_type)
        evaluator.params.imgIds = IMAGE_IDS
        if categories is not None:
            evaluator.params.catIds = categories
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return evaluator


def test_curves_hold_cocoevals_precision_array_by_files_and_image_by_image():
    by_files: dict = {}
    coco_eval.evaluate(ANNOTATIONS, RESULTS, IMAGE_IDS, curves=by_files)
    streamed = coco_eval.ImageByImage(load_coco(ANNOTATIONS))
    for image_id in IMAGE_IDS:
        streamed.add(image_id, {t: [e for e in json.loads(p.read_text()) if e["image_id"] == image_id]
                                for t, p in RESULTS.items()})
    by_image: dict = {}
    streamed.stats(by_image)
    for iou_type in RESULTS:
        want = _cocoeval(iou_type).eval["precision"][:, :, :, 0, -1]
        assert (want > -1).any() and (want > 0).any()  # a case with curves to compare
        np.testing.assert_array_equal(by_files[iou_type].precision, want)
        np.testing.assert_array_equal(by_image[iou_type].precision, want)
        # the same true and false positives, whichever way the matches were gathered
        for kind in ("tp_scores", "fp_scores"):
            np.testing.assert_array_equal(getattr(by_files[iou_type], kind), getattr(by_image[iou_type], kind))
        counted = by_files[iou_type]
        assert len(counted.tp_scores) + len(counted.fp_scores) > 0


def test_per_class_ap_is_cocoevals_ap_of_that_class_alone():
    curves: dict = {}
    coco_eval.evaluate(ANNOTATIONS, RESULTS, IMAGE_IDS, curves=curves)
    names = dict(zip(COCO_LABELS.category_ids, COCO_LABELS.names))
    rows = per_class_table(curves, names, {1: 3})
    with_truth = [r for r in rows if _cocoeval("bbox", [r["category_id"]]).stats[0] > -1]
    assert with_truth
    for row in with_truth:
        for iou_type, kind in (("bbox", "box"), ("segm", "mask")):
            stats = _cocoeval(iou_type, [row["category_id"]]).stats
            assert row[f"{kind}_AP"] == round(stats[0] * 100, 2)
            assert row[f"{kind}_AP50"] == round(stats[1] * 100, 2)
    assert rows[0]["name"] == "person" and rows[0]["instances"] == 3
    missing = [r for r in rows if r not in with_truth]
    assert missing and all(r["box_AP"] is None for r in missing)


def _box(x, y, w=10, h=10, **fields):
    return {"bbox": [x, y, w, h], **fields}


def test_confusion_matrix_counts_a_hand_made_image():
    matrix = ConfusionMatrix([1, 2, 3])
    truths = [_box(0, 0, category_id=1), _box(100, 0, category_id=2), _box(200, 0, category_id=3),
              _box(300, 0, category_id=1), _box(400, 0, 50, 50, category_id=1, iscrowd=1)]
    detections = [
        _box(0, 0, category_id=1, score=0.9),     # right class
        _box(1, 0, category_id=2, score=0.8),     # a second detection on the same truth: a false alarm
        _box(100, 0, category_id=3, score=0.7),   # truth of class 2 taken for class 3
        _box(201, 1, category_id=3, score=0.2),   # below the score cut: not counted, truth 3 missed
        _box(600, 0, category_id=2, score=0.6),   # on nothing: a false alarm
        _box(405, 5, category_id=1, score=0.9),   # inside the crowd region: not counted
    ]
    matrix.add(truths, detections)
    background = 3
    want = np.zeros((4, 4), np.int64)
    want[0, 0] = 1                # class 1 right
    want[2, 1] = 1                # class 2 predicted as class 3
    want[1, background] = 2       # two false alarms of class 2
    want[background, 2] = 1       # class 3 missed
    want[background, 0] = 1       # the truth at x=300 missed
    np.testing.assert_array_equal(matrix.counts, want)
    matrix.add([_box(0, 0, category_id=2)], [])  # an image with nothing found adds a miss
    assert matrix.counts[background, 1] == 1


def test_detections_of_classes_the_annotations_do_not_list_are_left_out():
    matrix = ConfusionMatrix([1])  # a person-only set
    matrix.add([_box(0, 0, category_id=1)], [_box(0, 0, category_id=38, score=0.9),
                                             _box(50, 0, category_id=38, score=0.9)])
    assert matrix.counts.tolist() == [[0, 0], [1, 0]]  # the person missed; the kites not counted


def test_eval_on_annotations_of_some_classes_only(prepared, tmp_path):
    ws = prepared(tmp_path / "ws", "yolact_edge_mobilenetv2_config")
    full = json.loads(ANNOTATIONS.read_text())
    used = {a["category_id"] for a in full["annotations"]}
    subset = tmp_path / "subset.json"
    subset.write_text(json.dumps(full | {"categories": [c for c in full["categories"] if c["id"] in used]}))
    proc = run_cli("-w", ws.root, "--json", "eval", "--annotations", subset, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert {r["category_id"] for r in result["per_class"]} == used and len(result["pictures"]) == 5
    kept = np.load(ws.run_results("onnxruntime") / CURVES_DATA)
    assert kept["confusion"].shape == (len(used) + 1,) * 2


def test_the_highest_iou_pair_wins_a_shared_truth():
    matrix = ConfusionMatrix([1, 2])
    matrix.add([_box(0, 0, category_id=1)], [_box(3, 0, category_id=2, score=0.9),
                                             _box(1, 0, category_id=1, score=0.5)])
    assert matrix.counts[0, 0] == 1 and matrix.counts[1, 2] == 1  # the IoU, not the score, decides


def test_eval_draws_its_pictures_from_the_arrays_it_keeps(prepared, tmp_path):
    ws = prepared(tmp_path / "ws", "yolact_edge_mobilenetv2_config")
    result = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    folder = ws.run_results("onnxruntime")
    names = [PR_PNG["bbox"], PR_PNG["segm"], PER_CLASS_AP_PNG, CONFUSION_PNG, SCORES_PNG]
    assert sorted(result.pictures) == sorted(ws.relative(folder / n) for n in names)
    for name in names:
        picture = cv2.imread(str(folder / name))
        assert picture is not None and picture.shape[0] > 200 and picture.std() > 0, name
    kept = np.load(folder / CURVES_DATA)
    gt = load_coco(ANNOTATIONS)
    for iou_type in ("bbox", "segm"):
        with contextlib.redirect_stdout(io.StringIO()):
            evaluator = COCOeval(gt, gt.loadRes(str(folder / f"{'bbox' if iou_type == 'bbox' else 'mask'}"
                                                         "_detections.json")), iou_type)
            evaluator.params.imgIds = ws.read_ids()
            evaluator.evaluate()
            evaluator.accumulate()
        np.testing.assert_array_equal(kept[f"{iou_type}_precision"], evaluator.eval["precision"][:, :, :, 0, -1])
    assert kept["confusion"].sum() > 0
    assert [r["category_id"] for r in result.per_class] == list(kept["category_ids"])
    assert json.loads((folder / "metrics.json").read_text())["per_class"] == result.per_class

    proc = run_cli("-w", ws.root, "eval", "--no-plots", "--per-class", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "per-class AP" in proc.stdout and "person" in proc.stdout
    assert "pictures (PR curves" not in proc.stdout
    assert not [n for n in names if (folder / n).exists()]  # the earlier eval's pictures are gone


def test_without_matplotlib_eval_gives_its_numbers_and_says_why_no_pictures(prepared, tmp_path, monkeypatch, capsys):
    import builtins

    ws = prepared(tmp_path / "ws", "yolact_edge_mobilenetv2_config")
    with_pictures = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    real_import = builtins.__import__

    def no_matplotlib(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_matplotlib)
    without = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    assert without.coco == with_pictures.coco and without.per_class == with_pictures.per_class
    assert without.pictures == [] and not (ws.run_results("onnxruntime") / CONFUSION_PNG).exists()
    assert "matplotlib is not installed" in capsys.readouterr().err


BENCH_RUNS = [
    {"backend": "onnxruntime", "device": "cpu", "model": "models/yolact_edge.onnx", "mode": "inference",
     "time": "2026-12-06T10:00:00+0000", "stages_ms": {}, "precisions": [],
     "rows": [{"batch_size": b, "loops": 20, "throughput": t, "latency_p50_ms": 1000 * b / t,
               "latency_p99_ms": 1100 * b / t} for b, t in ((1, 10.0), (4, 14.0), (8, 15.0))]},
    {"backend": "openvino", "device": "cpu", "model": "models/yolact_edge.onnx", "mode": "precisions",
     "time": "2026-12-06T11:00:00+0000", "stages_ms": {}, "rows": [],
     "precisions": [{"backend": "openvino", "precision": p, "rows": [
         {"batch_size": 1, "throughput": t, "latency_p50_ms": 1000 / t, "latency_p99_ms": 1200 / t}]}
                    for p, t in (("fp32", 12.0), ("bf16", 20.0))]},
    {"backend": "onnxruntime", "device": "cpu", "model": "models/yolact_edge.onnx", "mode": "stages",
     "time": "2026-12-06T12:00:00+0000", "rows": [], "precisions": [],
     "stages_ms": {"read": 1.0, "inference": 80.0, "heads": 3.0, "detect": 2.0, "masks": 5.0, "rle": 4.0}},
]


def test_bench_pictures_from_a_bench_json():
    lines = plots.bench_series(BENCH_RUNS)
    assert [label.split()[:2] for label, _ in lines] == [["onnxruntime", "cpu"], ["openvino", "fp32"],
                                                          ["openvino", "bf16"]]
    assert [len(rows) for _, rows in lines] == [3, 1, 1]
    assert lines[0][0].endswith("2026-12-06 10:00:00 (20 loops)")  # two runs a minute apart stay apart


def test_bench_draws_beside_its_json(tmp_path):
    from yolact_edge_cli.workspace import Workspace

    ws = Workspace(tmp_path / "ws")
    ws.results_dir.mkdir(parents=True)
    ws.bench_log.write_text(json.dumps(BENCH_RUNS))
    written = plots.bench_pictures(ws.results_dir, BENCH_RUNS)
    assert [p.name for p in written] == [BENCH_THROUGHPUT_PNG, BENCH_LATENCY_PNG, BENCH_STAGES_PNG]
    for path in written:
        assert cv2.imread(str(path)).std() > 0
    assert plots.bench_pictures(ws.results_dir, BENCH_RUNS[2:]) == [ws.results_dir / BENCH_STAGES_PNG]
