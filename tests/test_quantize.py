"""`yedge quantize`: an INT8 QDQ model of the exported ONNX (per-channel Conv weights, equal factors
in each Q/DQ pair, float kept where asked), checked against float32 on held-out images; onnxruntime
runs it through infer and eval; its gate fails when set tight, writing nothing."""
from __future__ import annotations

import json
import shutil

import onnx
import pytest
from onnx import numpy_helper

from yolact_edge_cli.workspace import Workspace

from .conftest import MINI_ANNOTATIONS, assert_clean_failure, copy_sample_images, run_cli

pytestmark = pytest.mark.slow

MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    """The head layout (FPN and heads in the graph), prep and infer on the two sample photos."""
    return prepared(tmp_path_factory.mktemp("quantize") / "ws", MBV2, layout="head")


@pytest.fixture(scope="module")
def photos(tmp_path_factory):
    from yolact_edge_cli.steps.export import SAMPLE_IMAGE

    folder = copy_sample_images(tmp_path_factory.mktemp("photos"))
    shutil.copy(SAMPLE_IMAGE, folder / "sample.jpg")
    return folder


def _structure(model) -> tuple[dict, dict, list]:
    producers = {o: n for n in model.graph.node for o in n.output}
    initializers = {i.name: numpy_helper.to_array(i) for i in model.graph.initializer}
    convs = [n for n in model.graph.node if n.op_type == "Conv"]
    return producers, initializers, convs


def test_quantize_writes_per_channel_qdq_with_float_where_asked(workspace, photos):
    proc = run_cli("-w", workspace.root, "--json", "quantize", "--images", photos)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    model = onnx.load(str(workspace.int8_onnx))
    assert model.opset_import[0].version >= 13
    producers, initializers, convs = _structure(model)
    quantized = [c for c in convs if producers.get(c.input[1]) is not None
                 and producers[c.input[1]].op_type == "DequantizeLinear"]
    kept = [c for c in convs if c not in quantized]
    assert (len(quantized), len(kept)) == (result["quantized_convs"], result["float_convs"])
    # the FPN and the prediction heads stay float; the backbone and the protonet are INT8
    assert kept and all("fpn_phase" in c.name or "prediction_layers" in c.name for c in kept)
    assert any("proto_net" in c.name for c in quantized) and any("backbone" in c.name for c in quantized)
    for conv in quantized:  # per-channel weights: one scale per output channel, along axis 0
        dq = producers[conv.input[1]]
        weight, scale = initializers[dq.input[0]], initializers[dq.input[1]]
        assert scale.shape == (weight.shape[0],)
        assert next(a.i for a in dq.attribute if a.name == "axis") == 0
    for node in model.graph.node:  # an activation's pair shares its scale and zero point
        if node.op_type == "DequantizeLinear" and node.input[0] in producers:
            q = producers[node.input[0]]
            assert q.op_type == "QuantizeLinear" and list(q.input[1:]) == list(node.input[1:])
    props = {p.key: p.value for p in model.metadata_props}
    assert "yedge.weights_sha256" in props  # the checkpoint it came from, as export stamps it
    entry = Workspace(workspace.root).step("quantize")
    assert entry["outputs"]["onnx"] == "models/yolact_edge_int8.onnx" and entry["options"]["method"] == "minmax"
    assert set(entry["agreement"]) == {"loc", "conf", "mask", "proto"}
    assert set(result["outputs"]) == {"loc", "conf", "mask", "proto"}
    assert all(0.999 <= o["cosine"] <= 1.0 for o in result["outputs"].values())
    assert result["calibration_images"] == 2 and result["check_images"] == 1

    # onnxruntime runs it, file by file and through eval
    assert run_cli("-w", workspace.root, "infer", "--model", workspace.int8_onnx, "--run", "int8").returncode == 0
    proc = run_cli("-w", workspace.root, "--json", "eval", "--outputs", workspace.outputs_dir / "int8",
                   "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["images"] == 2


def test_all_and_keep_float_choose_the_float_layers(workspace, photos, tmp_path):
    out = tmp_path / "all.onnx"
    proc = run_cli("-w", workspace.root, "--json", "quantize", "--images", photos, "--all", "-o", out,
                   "--min-cosine", "0.9")
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["float_convs"] == 0
    out = tmp_path / "proto.onnx"
    proc = run_cli("-w", workspace.root, "--json", "quantize", "--images", photos, "--keep-float", "*proto_net*",
                   "-o", out, "--min-cosine", "0.9")
    assert proc.returncode == 0, proc.stderr
    _, _, convs = _structure(onnx.load(str(out)))
    assert json.loads(proc.stdout)["float_convs"] == sum("proto_net" in c.name for c in convs) > 0
    assert_clean_failure(run_cli("-w", workspace.root, "quantize", "--images", photos, "--all", "--keep-float", "x"),
                         "--all", code=2)
    assert_clean_failure(run_cli("-w", workspace.root, "quantize", "--images", photos, "--keep-float", "*"),
                         "keeps every Conv float", code=2)


def test_the_gate_fails_when_set_tight_and_writes_nothing(workspace, photos, tmp_path):
    before = (workspace.manifest_path.read_text())
    out = tmp_path / "tight.onnx"
    proc = run_cli("-w", workspace.root, "quantize", "--images", photos, "--min-cosine", "0.99999999", "-o", out)
    assert_clean_failure(proc, "below --min-cosine 0.99999999", "nothing was written", code=5)
    assert not out.exists() and list(tmp_path.iterdir()) == []
    assert workspace.manifest_path.read_text() == before


def test_quantize_needs_images_to_calibrate_and_check(workspace, tmp_path):
    one = copy_sample_images(tmp_path / "one")
    (one / "coffee.png").unlink()
    assert_clean_failure(run_cli("-w", workspace.root, "quantize", "--images", one), "at least 2 images", code=3)


def test_an_unreadable_photo_is_named_with_quantize_s_fix(workspace, tmp_path):
    photos = copy_sample_images(tmp_path / "photos")
    (photos / "broken.jpg").write_bytes(b"not a jpeg")
    out = tmp_path / "int8.onnx"
    line = assert_clean_failure(run_cli("-w", workspace.root, "quantize", "--images", photos, "-o", out),
                                "broken.jpg", "move it out of the --images folder", code=3)
    assert "prep" not in line and not out.exists()


def test_int8_finds_the_confident_detections_of_float32(tmp_path, checkpoint):
    """On a checkpoint made confident (a few clear detections per photo, not a hundred around
    the 0.05 threshold: --conf-gain 4 --bg-bias 14), the default mix keeps ≥ 95 % of float32's
    detections scoring ≥ 0.3 on the held-out prepared photo, and its box mAP with them."""
    from yolact_edge_cli.steps import export, prep

    ws = Workspace(tmp_path / "ws")
    export.run(ws, checkpoint(conf_gain=4.0, bg_bias=14.0), export.ExportOptions(layout="head"))
    prep.run(ws, copy_sample_images(tmp_path / "images"), MINI_ANNOTATIONS, prep.PrepOptions(workers=1))
    proc = run_cli("-w", ws.root, "--json", "quantize")
    assert proc.returncode == 0, proc.stderr
    found = json.loads(proc.stdout)["detections"]
    assert found["float32_confident"] >= 10 and found["matched_share"] >= 0.95
    assert found["map_float32"] is not None and found["map_drop"] <= 1.0
    assert ws.step("quantize")["detections"]["matched_share"] == found["matched_share"]
