"""`export` of a video checkpoint: a keyframe graph that also gives the key state and a
non-keyframe graph that takes it (docs/video.md §4). Driven by hand in onnxruntime, the two
graphs reproduce the reference's goldens."""
import json

import onnx
import onnxruntime as ort
import pytest
import torch

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.model.contract import KEY_STATE_NAMES, non_keyframe_graph
from yolact_edge_cli.steps import export
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, run_cli
from .fakes.atc_ops import unsupported
from .golden import Golden
from .test_video_model import GOLDENS, shifted_astronaut

FPN = ["output0", "output1", "output2", "output3", "output4", "output5"]
HEAD = ["loc", "conf", "mask", "proto"]


@pytest.fixture(scope="module", params=[("yolact_edge_vid_resnet50_config", "fpn"),
                                        ("yolact_edge_vid_minimal_resnet50_config", "head")])
def exported(request, checkpoint, tmp_path_factory):
    config, layout = request.param
    ws = Workspace(tmp_path_factory.mktemp("video-export"))
    result = export.run(ws, checkpoint(config), export.ExportOptions(layout=layout))
    return config, layout, ws, result


def test_both_graphs_are_written_and_recorded(exported):
    config, layout, ws, result = exported
    keyframe, nonkey = ws.default_onnx, non_keyframe_graph(ws.default_onnx)
    assert sorted(p.name for p in ws.models_dir.iterdir()) == sorted([keyframe.name, nonkey.name])
    assert nonkey.name == "yolact_edge.nonkey.onnx"
    names = FPN if layout == "fpn" else HEAD
    key_shapes = [[1, 256, 35, 35], [1, 256, 18, 18], [1, 256, 69, 69]]
    assert [o["name"] for o in result.outputs] == [*names, *KEY_STATE_NAMES]
    assert [o["shape"] for o in result.outputs][-3:] == key_shapes
    assert [i["name"] for i in result.non_keyframe["inputs"]] == ["image", *KEY_STATE_NAMES]
    assert [i["shape"] for i in result.non_keyframe["inputs"]][1:] == key_shapes
    assert [o["name"] for o in result.non_keyframe["outputs"]] == names
    for path, extra in ((keyframe, []), (nonkey, ["GridSample"])):
        model = onnx.load(str(path))
        assert model.opset_import[0].version == export.VIDEO_OPSET == 16
        assert unsupported(model) == extra  # GridSample: see docs/atc-onnx-operators.md
    entry = json.loads(ws.manifest_path.read_text())["steps"]["export"]
    assert entry["options"]["config"] == config and entry["options"]["opset"] == 16
    assert entry["outputs"]["non_keyframe_onnx"] == "models/yolact_edge.nonkey.onnx"
    assert len(entry["outputs"]["non_keyframe_onnx_sha256"]) == 64
    assert all(v <= 1e-4 for v in result.non_keyframe["max_abs_diff"].values())


def test_the_two_graphs_reproduce_the_goldens(exported):
    """Keyframe graph on frame 0, non-keyframe graph on frame 1 with the keyframe graph's
    key state: the reference's k0, key state and n1 tensors."""
    config, layout, ws, _ = exported
    golden = Golden("astronaut", GOLDENS[config])
    keyframe = ort.InferenceSession(str(ws.default_onnx), providers=["CPUExecutionProvider"])
    nonkey = ort.InferenceSession(str(non_keyframe_graph(ws.default_onnx)),
                                  providers=["CPUExecutionProvider"])
    frame0 = preprocess(read_image(DATA / "astronaut.png"))[None]
    frame1 = preprocess(shifted_astronaut())[None]
    names = FPN if layout == "fpn" else HEAD
    *k0, key_p4, key_p5, key_lateral = keyframe.run([*names, *KEY_STATE_NAMES], {"image": frame0})
    n1 = nonkey.run(names, {"image": frame1, "key_p4": key_p4, "key_p5": key_p5,
                            "key_lateral": key_lateral})
    for name, value in zip(("stat_feat_p4", "stat_feat_p5", "stat_lateral"), (key_p4, key_p5, key_lateral)):
        golden.check(name, value)
    golden_names = ["p3", "p4", "p5", "p6", "p7", "proto"] if layout == "fpn" \
        else ["loc", "conf", "mask_coef", "proto"]
    for tag, outputs in (("k0", k0), ("n1", n1)):
        for name, value in zip(golden_names, outputs):
            golden.check(f"{tag}_{name}", value)


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["detect", "fpn"])
def test_detect_layout_and_dynamic_batch_pass_their_check(layout, checkpoint, tmp_path):
    """export compares both graphs with PyTorch (the non-keyframe one on shifted check images,
    whose flows are not zero); a dynamic batch runs them at batch 2."""
    dynamic = layout == "fpn"
    result = export.run(Workspace(tmp_path / "ws"), checkpoint("yolact_edge_vid_resnet50_config"), export.ExportOptions(
        layout=layout, dynamic_batch=dynamic, check_images=(DATA / "astronaut.png", DATA / "coffee.png")))
    assert result.non_keyframe is not None
    limit = 1e-4 * 10  # relative to outputs' scale
    for diffs in (result.max_abs_diff, result.non_keyframe["max_abs_diff"]):
        assert diffs and all(v <= limit for v in diffs.values())
    if dynamic:
        assert [i["shape"][0] for i in result.non_keyframe["inputs"]] == ["batch"] * 4


def test_an_opset_without_gridsample_is_refused(checkpoint, tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "export", "--weights",
                   checkpoint("yolact_edge_vid_minimal_resnet50_config"), "--opset", "13")
    assert_clean_failure(proc, "opset 13 has no GridSample", "--opset 16")
    assert not list((tmp_path / "ws").rglob("*.onnx"))


def test_a_runtime_named_checkpoint_is_refused_by_export(checkpoint, tmp_path):
    state = torch.load(checkpoint("yolact_edge_vid_minimal_resnet50_config"), weights_only=True)
    renamed = {("flow_net." + k if k.startswith("flow_net.") else k): v for k, v in state.items()}
    path = tmp_path / "runtime.pth"
    torch.save(renamed, path)
    proc = run_cli("-w", tmp_path / "ws", "export", "--weights", path)
    line = assert_clean_failure(proc, "runtime.pth", "flow_net.flow_net.*")
    assert "rename flow_net.flow_net.* to flow_net.*" in proc.stderr, line
    assert not list((tmp_path / "ws").rglob("*.onnx"))


def test_quantize_refuses_a_video_model(exported, tmp_path):
    _, _, ws, _ = exported
    proc = run_cli("-w", ws.root, "quantize")
    assert_clean_failure(proc, "INT8 of a video model", code=2)
