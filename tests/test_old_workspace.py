"""A workspace written by the previous version (before typed records and provenance) still
works: tests/data/old_workspace holds its manifest, run marker, ids and prep plan exactly as that
version wrote them (export, prep, infer, eval on the mini set), with paths and hashes templated;
the heavy files are made here (they are deterministic) and the templates filled in."""
import json
import shutil

import pytest

from yolact_edge_cli.steps import evaluate, export, infer, prep
from yolact_edge_cli.workspace import Workspace, sha256_file

from .conftest import DATA, copy_sample_images, run_cli

pytestmark = pytest.mark.slow

OLD = DATA / "old_workspace"
MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"
TEMPLATES = ("yedge.json", "outputs/.onnxruntime.yedge.json", "inputs/prep_plan.json", "inputs/ids.json")


def test_a_workspace_of_the_previous_version_still_works(tmp_path, checkpoint):
    weights = checkpoint("yolact_edge_mobilenetv2_config")
    images = copy_sample_images(tmp_path / "images")
    fresh = Workspace(tmp_path / "fresh")
    export.run(fresh, weights)
    prep.run(fresh, images, MINI, prep.PrepOptions(workers=1))
    infer.run(fresh)
    expected = evaluate.run(fresh, evaluate.EvalOptions(workers=1))

    ws = Workspace(tmp_path / "old")
    shutil.copytree(fresh.models_dir, ws.models_dir)
    shutil.copytree(fresh.bin_dir, ws.bin_dir)
    shutil.copytree(fresh.run_dir("onnxruntime"), ws.run_dir("onnxruntime"))
    values = {"{WS}": str(ws.root), "{WEIGHTS}": str(weights), "{IMAGES}": str(images),
              "{ANNOTATIONS}": str(MINI), "{WEIGHTS_SHA256}": sha256_file(weights),
              "{ONNX_SHA256}": sha256_file(ws.default_onnx)}
    for name in TEMPLATES:
        text = (OLD / name).read_text()
        for key, value in values.items():
            text = text.replace(key, value)
        (ws.root / name).write_text(text)

    result = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    assert result.yolact_ap == expected.yolact_ap and result.coco == expected.coco
    assert (ws.results_dir / "mask_detections.json").read_bytes() == \
        (fresh.results_dir / "mask_detections.json").read_bytes()
    proc = run_cli("-w", ws.root, "--json", "infer")  # resumes: every output is there
    assert proc.returncode == 0 and json.loads(proc.stdout)["computed"] == 0, proc.stderr
    proc = run_cli("-w", ws.root, "show", "--num-images", "1")
    assert proc.returncode == 0, proc.stderr
    checks = {c["name"]: c for c in json.loads(run_cli("-w", ws.root, "--json", "doctor").stdout)["checks"]}
    assert checks["outputs/onnxruntime"]["status"] == "ok"
    assert checks["steps done"]["detail"] == "export, prep, infer, eval, show"
