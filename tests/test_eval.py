"""`eval` on the reference's two-image COCO set: the same COCO results, the same YOLACT mAP
table and the same COCOeval stats as the reference's eval.py."""
import json
import shutil
from collections import defaultdict

import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact_edge_cli.metrics.results import coco_entries
from yolact_edge_cli.model.masks import ImageResult
from yolact_edge_cli.steps import evaluate, export, infer, prep
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, run_cli
from .golden import IMAGES, Golden

pytestmark = pytest.mark.slow

MINI = DATA / "golden" / "eval_mini"


def _by_image(entries):
    grouped = defaultdict(list)
    for entry in entries:
        grouped[entry["image_id"]].append(entry)
    return grouped


def assert_results_match(ours: list[dict], theirs: list[dict], kind: str) -> None:
    """Same entries per image in order: category equal, score within 1e-4, boxes within 1 px,
    mask IoU ≥ 0.99."""
    ours, theirs = _by_image(ours), _by_image(theirs)
    assert ours.keys() == theirs.keys()
    for image_id in ours:
        assert len(ours[image_id]) == len(theirs[image_id]), image_id
        for a, b in zip(ours[image_id], theirs[image_id]):
            assert a["category_id"] == b["category_id"]
            assert abs(a["score"] - b["score"]) <= 1e-4
            if kind == "bbox":
                assert np.abs(np.array(a["bbox"]) - np.array(b["bbox"])).max() <= 1
            else:
                rle_b = {"size": b["segmentation"]["size"], "counts": b["segmentation"]["counts"].encode()}
                rle_a = {"size": a["segmentation"]["size"], "counts": a["segmentation"]["counts"].encode()}
                if mask_utils.area(rle_a) + mask_utils.area(rle_b) > 0:
                    assert mask_utils.iou([rle_a], [rle_b], [0])[0, 0] >= 0.99


@pytest.mark.parametrize("image", IMAGES)
def test_coco_entries_equal_the_reference_json(image):
    golden = Golden(image)
    result = ImageResult.from_masks(golden["out0_classes"], golden["out0_scores"], golden["out0_boxes"],
                                    golden.masks())
    bbox, mask = coco_entries(0, result)
    assert bbox == json.loads((DATA / "golden" / f"r50_seed0_{image}_bbox.json").read_text())
    assert mask == json.loads((DATA / "golden" / f"r50_seed0_{image}_mask.json").read_text())


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    return prepared(tmp_path_factory.mktemp("eval") / "ws")


@pytest.mark.parametrize("nms", ["fast", "trad"])
def test_eval_matches_the_reference(workspace, nms):
    result = evaluate.run(workspace, evaluate.EvalOptions(nms="fast" if nms == "fast" else "traditional", workers=2))
    assert result.images == 2
    bbox = json.loads((workspace.results_dir / "bbox_detections.json").read_text())
    mask = json.loads((workspace.results_dir / "mask_detections.json").read_text())
    assert_results_match(bbox, json.loads((MINI / f"{nms}_bbox.json").read_text()), "bbox")
    assert_results_match(mask, json.loads((MINI / f"{nms}_mask.json").read_text()), "segm")
    reference_ap = json.loads((MINI / f"{nms}_yolact_ap.json").read_text())
    for kind in ("box", "mask"):
        for key, value in reference_ap[kind].items():
            assert result.yolact_ap[kind][key] == pytest.approx(value, abs=1e-6), (kind, key)
    stats = json.loads((MINI / "cocoeval_stats.json").read_text())[nms]
    np.testing.assert_allclose(result.coco["bbox"]["stats"], stats["bbox"], atol=1e-6)
    np.testing.assert_allclose(result.coco["segm"]["stats"], stats["segm"], atol=1e-6)
    metrics = json.loads((workspace.results_dir / "metrics.json").read_text())
    assert metrics["provenance"]["backend"] == "onnxruntime"
    assert metrics["provenance"]["image_ids"] == [2, 1]
    assert len(metrics["provenance"]["model_sha256"]) == 64


@pytest.mark.exactness
def test_single_worker_gives_identical_files(workspace):
    evaluate.run(workspace, evaluate.EvalOptions(workers=2))
    two = (workspace.results_dir / "mask_detections.json").read_bytes()
    evaluate.run(workspace, evaluate.EvalOptions(workers=1))
    assert (workspace.results_dir / "mask_detections.json").read_bytes() == two


def test_subset_of_ids(workspace):
    result = evaluate.run(workspace, evaluate.EvalOptions(max_images=1, workers=1))
    assert result.images == 1
    bbox = json.loads((workspace.results_dir / "bbox_detections.json").read_text())
    assert {e["image_id"] for e in bbox} == {2}
    assert json.loads((workspace.results_dir / "metrics.json").read_text())["provenance"]["image_ids"] == [2]


def test_missing_outputs_are_listed_unless_allowed(workspace, tmp_path):
    run_dir = workspace.outputs_dir / "onnxruntime"
    moved = tmp_path / "1_3.bin"
    shutil.move(run_dir / "1_3.bin", moved)
    try:
        proc = run_cli("-w", workspace.root, "eval")
        assert_clean_failure(proc, "missing or incomplete for 1 image(s): ids 1", "--allow-missing", code=3)
        result = evaluate.run(workspace, evaluate.EvalOptions(workers=1), allow_missing=True)
        assert result.images == 1 and result.missing == [1]
    finally:
        shutil.move(moved, run_dir / "1_3.bin")


def test_zero_detections_and_images_without_ground_truth(tmp_path, checkpoint):
    """Background wins everywhere with a huge BG bias: Detect returns nothing for every image,
    the results files are empty lists, and the metrics say so instead of failing."""
    images = copy_sample_images(tmp_path / "images")
    annotations = json.loads((MINI / "instances_mini.json").read_text())
    annotations["images"].append({"id": 7, "file_name": "astronaut.png", "width": 512, "height": 512})
    ann_path = tmp_path / "ann.json"
    ann_path.write_text(json.dumps(annotations))
    ws = Workspace(tmp_path / "ws")
    export.run(ws, checkpoint("yolact_edge_mobilenetv2_config", bg_bias=1000.0))
    prep.run(ws, images, ann_path, prep.PrepOptions(workers=1, all_images=True))
    assert ws.read_ids() == [2, 1, 7]
    infer.run(ws)
    result = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    assert result.images == 3
    assert json.loads((ws.results_dir / "bbox_detections.json").read_text()) == []
    assert result.coco["bbox"]["stats"] == [-1.0] * 12
    assert result.yolact_ap["box"]["all"] == 0.0


def test_eval_before_infer(tmp_path):
    proc = run_cli("-w", tmp_path, "eval")
    assert_clean_failure(proc, "no inference outputs", "yedge infer", code=3)


@pytest.mark.parametrize("nms", ["fast", "trad"])
def test_faster_coco_eval_equals_pycocotools(nms):
    pytest.importorskip("faster_coco_eval")
    from yolact_edge_cli.metrics import coco_eval

    results = {"bbox": MINI / f"{nms}_bbox.json", "segm": MINI / f"{nms}_mask.json"}
    slow = coco_eval.evaluate(MINI / "instances_mini.json", results, [2, 1])
    fast = coco_eval.evaluate(MINI / "instances_mini.json", results, [2, 1], fast=True)
    for kind in results:
        np.testing.assert_allclose(fast[kind]["stats"], slow[kind]["stats"], atol=1e-4)
    reference = json.loads((MINI / "cocoeval_stats.json").read_text())[nms]
    np.testing.assert_allclose(slow["bbox"]["stats"], reference["bbox"], atol=1e-9)


def test_accuracy_gates(workspace, tmp_path):
    proc = run_cli("-w", workspace.root, "eval", "--min-map", "4.9")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("-w", workspace.root, "eval", "--min-map", "12", "--map-kind", "mask")
    assert_clean_failure(proc, "mask mAP 11.71 is below the required 12.00", code=5)
    assert "YOLACT mAP" in proc.stdout  # the results are still shown and written
    previous = json.loads((workspace.results_dir / "metrics.json").read_text())
    same = tmp_path / "same.json"
    same.write_text(json.dumps(previous))
    proc = run_cli("-w", workspace.root, "--json", "eval", "--against", same, "--tolerance", "0.3")
    assert proc.returncode == 0, proc.stderr
    previous["yolact_ap"]["box"]["all"] += 0.5
    previous["coco"]["segm"]["stats"][0] -= 0.01
    moved = tmp_path / "moved.json"
    moved.write_text(json.dumps(previous))
    proc = run_cli("-w", workspace.root, "eval", "--against", moved)
    line = assert_clean_failure(proc, "2 mAP(s) moved more than 0.3 points", code=5)
    assert "yolact box all -0.50" in line and "coco mask AP +1.00" in line
    bad = tmp_path / "bad.json"
    bad.write_text("{}")
    assert_clean_failure(run_cli("-w", workspace.root, "eval", "--against", bad), "not a yedge metrics.json", code=3)


def test_a_host_pipeline_keeps_numpys_blas_to_one_thread():
    """The host part's matrix products are numpy's (OpenBLAS, a spinning thread per core): a
    pipeline keeps them to one BLAS thread, whatever its share of the cores, or two workers on two
    cores fight over four spinning threads, and threaded products may differ in the last bit."""
    import os
    import subprocess
    import sys

    code = ("import ctypes, numpy\nfrom pathlib import Path\n"
            "from yolact_edge_cli.host import HostPipeline, HostSpec\n"
            "found = sorted((Path(numpy.__file__).resolve().parent.parent / 'numpy.libs').glob('*openblas*.so*'))\n"
            "library = ctypes.CDLL(str(found[0])) if found else None\n"
            "threads = getattr(library, 'scipy_openblas_get_num_threads64_', None)\n"
            "if threads is None:\n    raise SystemExit('no bundled OpenBLAS')\n"
            "before = threads()\n"
            "HostPipeline(HostSpec(layout='head', threads=2))\n"
            "print(before, threads())\n")
    # OpenBLAS as a user's process starts it: one thread per core, not the test workers' one
    env = {name: value for name, value in os.environ.items() if name != "OMP_NUM_THREADS"}
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if "no bundled OpenBLAS" in proc.stderr:
        pytest.skip("numpy here does not use the OpenBLAS its wheels bundle")
    assert proc.returncode == 0, proc.stderr
    before, after = map(int, proc.stdout.split())
    if before == 1:
        pytest.skip("one core: nothing to keep")
    assert after == 1
