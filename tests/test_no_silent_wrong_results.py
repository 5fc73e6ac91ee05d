"""No path that gives a wrong answer with exit 0: artifacts that do not belong together are
refused before anything is computed (the provenance chain), bad annotations and bad counts are
refused up front, and what is reported is what was computed. Each test names the row of the
docs/errors.md table it backs."""
import copy
import json
import shutil

import cv2
import pytest

from yolact_edge_cli import provenance
from yolact_edge_cli.records import ConvertRecord
from yolact_edge_cli.steps import evaluate, export, infer, prep, show
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, run_cli

pytestmark = pytest.mark.slow

MBV2 = "yolact_edge_mobilenetv2_config"
MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"


@pytest.fixture(scope="module")
def base(tmp_path_factory, prepared):
    """export (checkpoint A) → prep (the two sample photos) → infer (onnxruntime) → eval → show."""
    ws = prepared(tmp_path_factory.mktemp("base") / "ws", MBV2)
    evaluate.run(ws, evaluate.EvalOptions(workers=1))
    show.run(ws, show.ShowOptions(images=1))
    return ws


@pytest.fixture(scope="module")
def reexported(base, tmp_path_factory, checkpoint):
    """`base`, then `export` of another checkpoint B: the onnxruntime run is still A's."""
    root = tmp_path_factory.mktemp("reexported")
    shutil.copytree(base.root, root / "ws")
    ws = Workspace(root / "ws")
    shutil.copy(base.default_onnx, root / "a.onnx")
    export.run(ws, checkpoint(MBV2, seed=1))
    return ws


def _copy(ws: Workspace, tmp_path) -> Workspace:
    shutil.copytree(ws.root, tmp_path / "ws")
    return Workspace(tmp_path / "ws")


# --- the provenance chain: every pair that can disagree ----------------------------------

def test_eval_refuses_outputs_of_another_checkpoint(reexported, checkpoint):
    """Row: outputs of checkpoint A, heads of checkpoint B (export was rerun)."""
    proc = run_cli("-w", reexported.root, "eval")
    line = assert_clean_failure(proc, "was computed from", "but the host-side heads would come from",
                                "--weights", code=3)
    assert checkpoint(MBV2).name in line and checkpoint(MBV2, seed=1).name in line
    # pointed at the checkpoint the outputs came from, it evaluates
    proc = run_cli("-w", reexported.root, "--json", "eval", "--weights", checkpoint(MBV2))
    assert proc.returncode == 0, proc.stderr


def test_compare_refuses_a_model_of_another_checkpoint(reexported):
    proc = run_cli("-w", reexported.root, "compare", reexported.root.parent / "a.onnx",
                   reexported.outputs_dir / "onnxruntime")
    assert_clean_failure(proc, "a.onnx was computed from", "host-side heads", code=3)


def test_show_refuses_results_of_the_previous_checkpoint(reexported):
    proc = run_cli("-w", reexported.root, "show")
    assert_clean_failure(proc, "the last evaluation is of outputs computed from",
                         "but the model exported now is", "yedge infer --overwrite", code=3)


def test_bench_stages_refuses_a_model_of_another_checkpoint(reexported):
    proc = run_cli("-w", reexported.root, "bench", "--stages", "--num-images", "1",
                   "--model", reexported.root.parent / "a.onnx")
    assert_clean_failure(proc, "a.onnx was computed from", "host-side heads", code=3)


def test_prep_rerun_after_infer_is_caught_by_infer_eval_compare_and_show(base, tmp_path):
    """The run folder and the eval results were made on prepared inputs that are gone."""
    ws = _copy(base, tmp_path)
    prep.run(ws, copy_sample_images(tmp_path / "images"), MINI, prep.PrepOptions(workers=1, limit=1))
    proc = run_cli("-w", ws.root, "eval")
    assert_clean_failure(proc, "other prepared inputs", "--overwrite", code=3)
    proc = run_cli("-w", ws.root, "compare", ws.outputs_dir / "onnxruntime", ws.outputs_dir / "onnxruntime")
    assert_clean_failure(proc, "other prepared inputs", code=3)
    proc = run_cli("-w", ws.root, "show")
    assert_clean_failure(proc, "the last evaluation was computed on other prepared inputs", code=3)
    before = sorted(p.name for p in (ws.outputs_dir / "onnxruntime").glob("*.bin"))
    proc = run_cli("-w", ws.root, "infer")
    assert_clean_failure(proc, "holds outputs of other prepared inputs", "--overwrite", code=3)
    assert sorted(p.name for p in (ws.outputs_dir / "onnxruntime").glob("*.bin")) == before
    proc = run_cli("-w", ws.root, "--json", "infer", "--overwrite")
    assert proc.returncode == 0 and json.loads(proc.stdout)["computed"] == 1, proc.stderr
    proc = run_cli("-w", ws.root, "eval")
    assert proc.returncode == 0, proc.stderr


def test_eval_refuses_annotations_without_the_prepared_images(base, tmp_path):
    data = json.loads(MINI.read_text())
    data["images"] = [i for i in data["images"] if i["id"] != 1]
    data["annotations"] = [a for a in data["annotations"] if a["image_id"] != 1]
    other = tmp_path / "other.json"
    other.write_text(json.dumps(data))
    proc = run_cli("-w", base.root, "eval", "--annotations", other)
    assert_clean_failure(proc, "other.json", "1 prepared image id(s) are not in these annotations: 1",
                         code=3)


def test_show_refuses_ids_that_were_not_evaluated(base, tmp_path):
    ws = _copy(base, tmp_path)
    evaluate.run(ws, evaluate.EvalOptions(workers=1, max_images=1))  # image 2 only
    proc = run_cli("-w", ws.root, "show", "--ids", "1")
    assert_clean_failure(proc, "image id(s) 1 were not evaluated", code=3)


def test_origin_of_each_model_kind(base, tmp_path, checkpoint):
    """.pth is its own origin, the ONNX carries it in its metadata (also when copied out of
    the workspace), an .om through convert's record."""
    a = provenance.checkpoint_origin(checkpoint(MBV2))
    assert provenance.model_origin(base, checkpoint(MBV2)) == a
    moved = tmp_path / "elsewhere.onnx"
    shutil.copy(base.default_onnx, moved)
    assert provenance.model_origin(Workspace(tmp_path / "other"), moved).weights_sha256 == a.weights_sha256
    ws = _copy(base, tmp_path)
    om = ws.models_dir / "yolact_edge_bs1.om"
    om.write_bytes(b"om")
    assert provenance.model_origin(ws, om) is None
    ws.save(ConvertRecord(models=[{"om": "models/yolact_edge_bs1.om", "weights": a.weights,
                                   "weights_sha256": a.weights_sha256}]))
    assert provenance.model_origin(ws, om) == a


# --- reports name what was computed --------------------------------------------------------

def test_metrics_name_the_run_evaluated_and_each_run_keeps_its_results(base, tmp_path, checkpoint):
    ws = _copy(base, tmp_path)
    infer.run(ws, infer.InferOptions(backend="torch"))
    torch_metrics = evaluate.run(ws, evaluate.EvalOptions(workers=1))  # the last infer: torch
    result = evaluate.run(ws, evaluate.EvalOptions(workers=1), outputs=ws.outputs_dir / "onnxruntime")
    latest = json.loads((ws.results_dir / "metrics.json").read_text())
    assert latest["provenance"]["backend"] == "onnxruntime"
    assert latest["provenance"]["model"] == "models/yolact_edge.onnx"
    assert latest["provenance"]["run"] == "onnxruntime"
    kept = json.loads((ws.results_dir / "torch" / "metrics.json").read_text())
    assert kept["provenance"]["backend"] == "torch"
    assert kept["provenance"]["model"] == str(checkpoint(MBV2).absolute())
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / "torch" / name).is_file()
        assert (ws.results_dir / name).read_bytes() == (ws.results_dir / "onnxruntime" / name).read_bytes()
    assert result.results_dir == str(ws.results_dir / "onnxruntime")
    assert torch_metrics.results_dir == str(ws.results_dir / "torch")


# --- annotations validated up front ---------------------------------------------------------

def _mini(change) -> dict:
    data = copy.deepcopy(json.loads(MINI.read_text()))
    change(data)
    return data


def _duplicate_id(data):
    data["images"][1]["id"] = data["images"][0]["id"]


def _string_ids(data):
    for image in data["images"]:
        image["id"] = str(image["id"])
    for ann in data["annotations"]:
        ann["image_id"] = str(ann["image_id"])


def _no_categories(data):
    del data["categories"]


def _unknown_category(data):
    data["annotations"][0]["category_id"] = 999


def _no_size(data):
    del data["images"][0]["width"]


def _not_coco_categories(data):
    data["categories"].append({"id": 95, "name": "not coco"})


def _bad_bbox(data):
    data["annotations"][0]["bbox"] = [1, 2, 3]


@pytest.mark.parametrize("change, fragments", [
    (_duplicate_id, ["1 duplicated image id(s) (2: coffee.png and astronaut.png)"]),
    (_string_ids, ["2 image(s) whose id is not an integer", "images[0]: '2'"]),
    (_no_categories, ["missing 'categories' list"]),
    (_unknown_category, ["annotation(s) of a category_id not in 'categories'", "→ 999"]),
    (_no_size, ["1 image(s) without a positive integer width/height (2)"]),
    (_not_coco_categories, ["category id(s) of no label set a model predicts", "(95)"]),
    (_bad_bbox, ["without a valid bbox"]),
])
def test_prep_refuses_invalid_annotations_before_any_work(tmp_path, change, fragments):
    annotations = tmp_path / "bad.json"
    annotations.write_text(json.dumps(_mini(change)))
    ws = tmp_path / "ws"
    proc = run_cli("-w", ws, "prep", "--images", copy_sample_images(tmp_path / "images"),
                   "--annotations", annotations, "--workers", "1")
    assert_clean_failure(proc, "bad.json: invalid COCO annotations", *fragments, code=3)
    assert not list(ws.glob("inputs/bin_file/*.bin"))


def test_crowd_annotations_are_valid(tmp_path):
    def crowd(data):
        data["annotations"][0].update(iscrowd=1, segmentation={"size": [400, 600], "counts": [0, 240000]})

    from yolact_edge_cli.data.coco import annotation_problems

    assert annotation_problems(_mini(crowd)) == []


def test_images_whose_size_differs_from_their_annotation(base, tmp_path):
    """prep warns and records the real size; eval and show work at the annotated size."""
    def swap(data):
        coffee = next(i for i in data["images"] if i["file_name"] == "coffee.png")
        coffee["width"], coffee["height"] = coffee["height"], coffee["width"]

    annotations = tmp_path / "swapped.json"
    annotations.write_text(json.dumps(_mini(swap)))
    ws = tmp_path / "ws"
    shutil.copytree(base.models_dir, ws / "models")
    shutil.copy(base.manifest_path, ws / "yedge.json")
    images = copy_sample_images(tmp_path / "images")
    proc = run_cli("-w", ws, "--json", "prep", "--images", images, "--annotations", annotations, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert "1 image(s) differ in size from their annotations: coffee.png (annotated 400×600, actual 600×400)" \
        in " ".join(proc.stderr.split())
    assert json.loads(proc.stdout)["size_mismatches"] == [
        {"id": 2, "file": "coffee.png", "annotated": [400, 600], "actual": [600, 400]}]
    for argv in (["infer"], ["eval"], ["show", "--ids", "2"]):
        proc = run_cli("-w", ws, *argv)
        assert proc.returncode == 0, (argv, proc.stderr)
    picture = cv2.imread(str(ws / "results" / "vis" / "2.png"))
    assert picture.shape[:2] == (600, 400)


# --- counts and choices checked before any work ---------------------------------------------

@pytest.mark.parametrize("argv, option", [
    (["infer", "-b", "-1"], "--batch-size"),
    (["infer", "-b", "0"], "--batch-size"),
    (["prep", "--images", DATA, "--annotations", MINI, "--limit", "-1"], "--limit"),
    (["prep", "--images", DATA, "--annotations", MINI, "--workers", "0"], "--workers"),
    (["eval", "--max-images", "-1"], "--max-images"),
    (["eval", "--workers", "-1"], "--workers"),
    (["eval", "--map-kind", "foo"], "--map-kind"),
    (["eval", "--score-threshold", "1.5"], "--score-threshold"),
    (["show", "--num-images", "-1"], "--num-images"),
    (["compare", "a", "b", "--num-inputs", "0"], "--num-inputs"),
    (["bench", "--loop", "0"], "--loop"),
    (["export", "--weights", "x.pth", "--batch-size", "0"], "--batch-size"),
    (["infer", "--ais-bench", "apii"], "--ais-bench"),
])
def test_bad_counts_and_choices_are_usage_errors_before_any_work(tmp_path, argv, option):
    ws = tmp_path / "ws"
    proc = run_cli("-w", ws, *argv)
    assert proc.returncode == 2, proc.stderr
    assert option in proc.stderr and "Traceback" not in proc.stderr
    assert not ws.exists()


def test_a_missing_against_file_is_reported_before_the_evaluation(tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "eval", "--against", tmp_path / "missing.json")
    assert_clean_failure(proc, "missing.json: metrics file not found", code=3)


def test_workspace_that_is_a_file(tmp_path):
    (tmp_path / "ws").write_text("")
    proc = run_cli("-w", tmp_path / "ws", "doctor")
    assert_clean_failure(proc, "is a file, not a folder", code=2)


# --- doctor: every run, advice that works when followed -----------------------------------

def _doctor(ws: Workspace) -> dict:
    proc = run_cli("-w", ws.root, "--json", "doctor")
    return {c["name"]: c for c in json.loads(proc.stdout)["checks"]}


def test_doctor_lists_every_run_and_its_advice_works(reexported, base, tmp_path):
    ws = _copy(reexported, tmp_path)
    (ws.outputs_dir / "empty").mkdir()
    provenance.write_run(ws.outputs_dir / "empty", provenance.RunRecord(
        model=str(ws.default_onnx), model_sha256="0" * 64, backend="onnxruntime"))
    checks = _doctor(ws)
    assert checks["steps done"]["detail"] == "export, prep, infer, eval, show"
    stale = checks["outputs/onnxruntime"]
    assert stale["status"] == "fail" and "another checkpoint" in stale["detail"]
    assert checks["outputs/empty"]["status"] != "ok"
    command = stale["fix"].strip("`").split()
    assert command[:2] == ["yedge", "infer"] and "--overwrite" in command
    proc = run_cli("-w", ws.root, *command[1:])
    assert proc.returncode == 0, proc.stderr
    checks = _doctor(ws)
    assert checks["outputs/onnxruntime"]["status"] == "ok"
    assert checks["outputs/onnxruntime"]["detail"].endswith("2 of 2 samples")
