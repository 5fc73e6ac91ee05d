"""The detect layout: the graph ends with Detect (fast NMS, top 100), the host is left with the
masks. Its detections equal the host path's (itself held to the reference's goldens) on crafted
score maps, in PyTorch and in the exported graph; and eval, predict, compare, show, bench and the
Ascend path give the files the head layout gives."""
import json
import warnings

import cv2
import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from yolact_edge_cli.choices import Layout
from yolact_edge_cli.data import binio
from yolact_edge_cli.model.config import RESNET50
from yolact_edge_cli.model.detect import detect_image, device_detections
from yolact_edge_cli.model.device_detect import DeviceDetect
from yolact_edge_cli.model.head import priors_tensor
from yolact_edge_cli.steps import evaluate, infer, show

from .conftest import DATA, assert_clean_failure, copy_sample_images, run_cli
from .fakes.atc_ops import unsupported
from .test_ascend import fake_env

pytestmark = pytest.mark.slow

PRIORS = priors_tensor(RESNET50)
NUM_PRIORS = PRIORS.shape[0]
MINI = DATA / "golden" / "eval_mini"


def _score_maps(kind: str, seed: int = 0):
    """loc [1,P,4], conf [1,P,81] (softmax), coef [1,P,32] for one kind of image:
    many: random scores, thousands of candidates;
    few: two overlapping priors pass 0.05, the better one suppresses the other in every class,
    so 80 detections (fewer than 100);
    none: no prior passes 0.05;
    crowded: class 7 has 600 candidates (more than the 200 a class keeps), other classes few;
    ties: 150 priors score exactly alike in every class, so ties decide what is kept."""
    g = torch.Generator().manual_seed(seed)
    loc = torch.randn(1, NUM_PRIORS, 4, generator=g) * 0.5
    logits = torch.randn(1, NUM_PRIORS, 81, generator=g)
    if kind in ("few", "none", "crowded", "ties"):
        logits[..., 0] += 30.0  # background everywhere: no candidate
    if kind == "few":  # two anchors of one cell, ratios 1 and 1/2: IoU ≈ 0.55
        loc[0, [99, 100]] = 0.0
        logits[0, [99, 100], 12] += 40.0
    if kind == "ties":  # 150 priors with the same scores in every class: ties everywhere, also at the 100th
        tied = torch.arange(0, NUM_PRIORS, NUM_PRIORS // 150)[:150]
        logits[0, tied] = torch.randn(81, generator=g)
        logits[0, tied, 0] -= 5.0
    if kind == "crowded":
        crowd = torch.randperm(NUM_PRIORS, generator=g)[:600]
        logits[0, crowd, 8] += 34.0 + torch.rand(600, generator=g) * 3
        logits[0, crowd[:5], 3] += 40.0
    coef = torch.randn(1, NUM_PRIORS, 32, generator=g).tanh()
    return loc, logits.softmax(-1), coef


KINDS = ("many", "few", "none", "crowded", "ties")


@pytest.fixture(scope="module")
def detect_graph(tmp_path_factory):
    """DeviceDetect alone, exported as the detect layout exports it (opset 11, batch of four)."""
    batch = [_score_maps(kind) for kind in KINDS]
    inputs = [torch.cat(parts) for parts in zip(*batch)]
    module = DeviceDetect(RESNET50, PRIORS).eval()
    path = tmp_path_factory.mktemp("detect_graph") / "detect.onnx"
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(module, tuple(inputs), str(path), dynamo=False, opset_version=11,
                          input_names=["loc", "conf", "coef"],
                          output_names=["boxes", "scores", "classes", "coefficients", "count"])
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ran = session.run(None, dict(zip(["loc", "conf", "coef"], (t.numpy() for t in inputs))))
    with torch.no_grad():
        traced = module(*inputs)
    return inputs, traced, [torch.from_numpy(o) for o in ran], onnx.load(str(path))


def test_the_crafted_maps_are_what_they_claim():
    assert int((_score_maps("none")[1][0, :, 1:].amax(1) > 0.05).sum()) == 0
    assert int((_score_maps("few")[1][0, :, 1:].amax(1) > 0.05).sum()) == 2
    conf = _score_maps("crowded")[1][0]
    assert int((conf[:, 1:].amax(1) > 0.05).sum()) == 600 and int((conf[:, 8] > 0.05).sum()) > 200


@pytest.mark.parametrize("where", ["torch", "onnxruntime"])
@pytest.mark.parametrize("position, kind", list(enumerate(KINDS)))
def test_device_detect_equals_host_fast_nms(detect_graph, where, position, kind):
    inputs, traced, ran, _ = detect_graph
    outputs = traced if where == "torch" else ran
    loc, conf, coef = (t[position] for t in inputs)
    want = detect_image(loc, conf, coef, PRIORS, RESNET50)
    got = device_detections(*(o[position] for o in outputs))
    boxes, scores, classes, coefs, count = (o[position] for o in outputs)
    if kind == "none":
        assert want is None and got is None and int(count) == 0
        assert not boxes.any() and not scores.any() and not classes.any() and not coefs.any()
        return
    assert want is not None and got is not None
    assert len(got) == len(want) == int(count) == {"many": 100, "few": 80, "crowded": 100, "ties": 100}[kind]
    assert np.array_equal(got.classes, want.classes)
    assert np.abs(got.scores - want.scores).max() <= 1e-5
    assert np.abs(got.boxes - want.boxes).max() <= 1e-5
    assert np.abs(got.coefs - want.coefs).max() <= 1e-6
    n = int(count)  # the slots past count are zero
    assert not boxes[n:].any() and not scores[n:].any() and not classes[n:].any() and not coefs[n:].any()
    if kind == "crowded":  # only a class's 200 best candidates take part
        rank_201 = conf[:, 8].sort(descending=True).values[200]  # column 8: class 7
        assert int((got.classes == 7).sum()) > 50
        assert float(got.scores[got.classes == 7].min()) > float(rank_201)


def test_device_detect_uses_only_operators_atc_converts(detect_graph):
    model = detect_graph[3]
    assert unsupported(model) == []
    ops = {node.op_type for node in model.graph.node}
    assert "TopK" in ops and not ops & {"NonMaxSuppression", "Loop", "Scan", "Trilu"}


@pytest.fixture(scope="module")
def detect_ws(tmp_path_factory, prepared):
    """Seed-0 ResNet-50 exported with --layout detect (dynamic batch), the two sample photos
    prepared and run through onnxruntime."""
    return prepared(tmp_path_factory.mktemp("detect") / "ws", layout="detect", dynamic_batch=True)


@pytest.fixture(scope="module")
def head_ws(tmp_path_factory, prepared):
    ws = prepared(tmp_path_factory.mktemp("head") / "ws", layout="head", dynamic_batch=True)
    evaluate.run(ws, evaluate.EvalOptions(workers=1))
    return ws


def test_export_writes_the_detect_contract(detect_ws):
    record = detect_ws.step("export")
    assert record["options"]["layout"] == "detect"
    outputs = record["io"]["outputs"]
    assert [(o["name"], o["shape"], o["dtype"]) for o in outputs] == [
        ("boxes", ["batch", 100, 4], "float32"), ("scores", ["batch", 100], "float32"),
        ("classes", ["batch", 100], "float32"), ("coefficients", ["batch", 100, 32], "float32"),
        ("count", ["batch"], "float32"), ("proto", ["batch", 138, 138, 32], "float32")]
    model = onnx.load(str(detect_ws.default_onnx))
    assert unsupported(model) == [] and "TopK" in record["op_types"]
    assert binio.run_layout(detect_ws.outputs_dir / "onnxruntime") == Layout.DETECT.value


@pytest.mark.exactness
def test_eval_gives_the_head_layouts_files_and_the_reference_ap(detect_ws, head_ws, tmp_path):
    from .conftest import clone_workspace

    ws = clone_workspace(detect_ws, tmp_path / "ws")
    result = evaluate.run(ws, evaluate.EvalOptions(workers=2))
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / name).read_bytes() == (head_ws.results_dir / name).read_bytes()
    reference = json.loads((MINI / "fast_yolact_ap.json").read_text())
    for kind in ("box", "mask"):
        assert result.yolact_ap[kind]["all"] == pytest.approx(reference[kind]["all"], abs=1e-4)
    proc = run_cli("-w", ws.root, "eval", "--nms", "traditional")
    assert_clean_failure(proc, "--nms traditional runs on the host", "--layout fpn or --layout head", code=2)
    shown = show.run(ws, show.ShowOptions(images=2))
    assert len(shown.pictures) == 2 and shown.detections_drawn > 0


@pytest.mark.exactness
def test_the_torch_backend_runs_the_detect_layout(detect_ws, head_ws, tmp_path):
    """PyTorch's DeviceDetect after PyTorch's network: the head layout's files on the torch backend."""
    from .conftest import clone_workspace

    files = {}
    for name, source in (("detect", detect_ws), ("head", head_ws)):
        ws = clone_workspace(source, tmp_path / name)
        infer.run(ws, infer.InferOptions(backend="torch", run_name="torch"))
        evaluate.run(ws, evaluate.EvalOptions(workers=1), outputs=ws.outputs_dir / "torch")
        files[name] = [(ws.results_dir / "torch" / f).read_bytes()
                       for f in ("bbox_detections.json", "mask_detections.json")]
    assert files["detect"] == files["head"]


@pytest.mark.exactness
def test_predict_and_streaming_eval_equal_the_head_layout(detect_ws, head_ws, tmp_path):
    """Also on flat images, where many detections tie exactly: the host decodes boxes with
    numpy's exp and the graph with onnxruntime's, which differ in the last bit, so ties must
    not be ordered by box."""
    photos = copy_sample_images(tmp_path / "photos")
    for name, colour in (("gray", 128), ("red", (40, 40, 220)), ("white", 255)):
        cv2.imwrite(str(photos / f"flat_{name}.png"), np.full((240, 320, 3), colour, np.uint8))
    lines = {}
    for name, ws in (("detect", detect_ws), ("head", head_ws)):
        proc = run_cli("-w", ws.root, "predict", photos, "--model", ws.default_onnx, "--score-threshold", "0",
                       "--workers", "1", "--no-save-images", "-o", tmp_path / name)
        assert proc.returncode == 0, proc.stderr
        lines[name] = (tmp_path / name / "predictions.jsonl").read_text()
    assert lines["detect"] == lines["head"] and '"detections": []' not in lines["detect"]
    proc = run_cli("-w", detect_ws.root, "--json", "eval", "--stream", "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (detect_ws.results_dir / "stream" / name).read_bytes() == (head_ws.results_dir / name).read_bytes()


def test_the_ascend_path_converts_and_runs_the_detect_layout(detect_ws, head_ws, tmp_path):
    from .conftest import clone_workspace

    ws = clone_workspace(detect_ws, tmp_path / "ws")
    env = fake_env()
    for args in (["convert", "--batch-sizes", "2"], ["infer", "--backend", "ascend", "--run", "npu"],
                 ["eval", "--workers", "1"]):
        proc = run_cli("-w", ws.root, *args, env=env)
        assert proc.returncode == 0, proc.stderr
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / "npu" / name).read_bytes() == (head_ws.results_dir / name).read_bytes()
    om = next(ws.models_dir.glob("*.om"))
    proc = run_cli("-w", ws.root, "--json", "compare", om, ws.default_onnx, "--num-inputs", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    compared = json.loads(proc.stdout)
    assert compared["layout"] == "detect" and compared["ok"]
    assert compared["detections"]["a"] == compared["detections"]["matched"] > 0
    proc = run_cli("-w", ws.root, "--json", "bench", "--stages", "--backend", "onnxruntime",
                   "--num-images", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    stages = json.loads(proc.stdout)["stages_ms"]
    assert {"inference", "heads", "detect", "masks", "json", "host_total"} <= stages.keys()


def test_an_operator_atc_has_no_parser_for_fails_convert_with_its_message(tmp_path):
    """A graph with Trilu (opset 14, not on atc's list): the emulated atc refuses it with the real
    tool's message, and convert reports it (exit 1) and records nothing."""
    from onnx import TensorProto, helper

    node = helper.make_node("Trilu", ["image"], ["y"], name="Trilu_0")
    image = helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 550, 550])
    result = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 3, 550, 550])
    graph = helper.make_graph([node], "g", [image], [result])
    path = tmp_path / "trilu.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)]), str(path))
    proc = run_cli("-w", tmp_path / "ws", "convert", "--model", path, env=fake_env())
    assert_clean_failure(proc, "atc failed (exit 255)", "No parser is registered for Op [Trilu_0, optype "
                         "[ai.onnx::14::Trilu]]", code=1)
    assert not list(tmp_path.rglob("*.om"))
