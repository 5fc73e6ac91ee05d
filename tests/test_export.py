"""`export` for every config, both layouts, static and dynamic batch: the ONNX runs in
onnxruntime, has the documented contract, and matches PyTorch. The whole matrix is in the slow
tier; three of its cases, which between them hold every config, layout and batch kind, are in the
fast one too."""
import json

import numpy as np
import onnx
import onnxruntime as ort
import pytest
import torch

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.model.checkpoint import load_model
from yolact_edge_cli.model.config import CONFIGS
from yolact_edge_cli.model.yolact import export_module
from yolact_edge_cli.steps import export
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA
from .fakes.atc_ops import unsupported

FPN_SHAPES = [[256, 69, 69], [256, 35, 35], [256, 18, 18], [256, 9, 9], [256, 5, 5], [138, 138, 32]]
HEAD_SHAPES = [[19248, 4], [19248, 81], [19248, 32], [138, 138, 32]]


def _inputs(batch: int) -> np.ndarray:
    images = [preprocess(read_image(DATA / f"{name}.png")) for name in ("astronaut", "coffee")]
    rng = np.random.default_rng(0)
    while len(images) < batch:
        images.append(rng.standard_normal((3, 550, 550)).astype(np.float32))
    return np.stack(images[:batch])


# the image configs (the video configs' two graphs: tests/test_video_export.py)
IMAGE_CONFIGS = sorted(name for name, cfg in CONFIGS.items() if cfg.video is None)
# every config, every layout and every batch kind at least once, in the fast tier
FAST_CASES = {("yolact_edge_mobilenetv2_config", "fpn", "dynamic"), ("yolact_edge_resnet50_config", "head", "2"),
              ("yolact_edge_config", "fpn", "1")}
MATRIX = [pytest.param(config, layout, batch, marks=() if (config, layout, batch) in FAST_CASES else pytest.mark.slow)
          for config in IMAGE_CONFIGS for layout in ("fpn", "head") for batch in ("1", "2", "dynamic")]


def test_the_fast_cases_hold_every_config_layout_and_batch_kind():
    for position, values in enumerate((IMAGE_CONFIGS, ("fpn", "head"), ("1", "2", "dynamic"))):
        assert {case[position] for case in FAST_CASES} == set(values)


@pytest.mark.parametrize(("config", "layout", "batch"), MATRIX)
def test_export_matches_pytorch(config, layout, batch, checkpoint, tmp_path):
    ws = Workspace(tmp_path / "ws")
    dynamic = batch == "dynamic"
    result = export.run(ws, checkpoint(config), export.ExportOptions(
        config="auto", layout=layout, batch_size=1 if dynamic else int(batch), dynamic_batch=dynamic))
    path = ws.default_onnx
    assert result.onnx == str(path) and path.exists()
    assert result.config == config
    assert [p.name for p in path.parent.iterdir()] == [path.name]  # no temporary leftovers

    model = onnx.load(str(path))
    assert model.opset_import[0].version == 11
    assert unsupported(model) == []  # every operator is one atc converts
    names = ["output0", "output1", "output2", "output3", "output4", "output5"] if layout == "fpn" \
        else ["loc", "conf", "mask", "proto"]
    assert [o.name for o in model.graph.output] == names
    expected_batch = "batch" if dynamic else int(batch)
    assert result.inputs == [{"name": "image", "shape": [expected_batch, 3, 550, 550], "dtype": "float32"}]
    shapes = FPN_SHAPES if layout == "fpn" else HEAD_SHAPES
    assert [o["shape"] for o in result.outputs] == [[expected_batch, *s] for s in shapes]

    run_batch = 3 if dynamic else int(batch)
    x = _inputs(run_batch)
    got = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(names, {"image": x})
    module = export_module(load_model(checkpoint(config)), layout)
    with torch.no_grad():
        want = [t.numpy() for t in module(torch.from_numpy(x))]
    for name, g, w in zip(names, got, want):
        assert g.shape == w.shape
        assert np.abs(g - w).max() <= 1e-4, name

    entry = json.loads(ws.manifest_path.read_text())["steps"]["export"]
    assert entry["options"]["layout"] == layout and entry["options"]["config"] == config
    assert entry["outputs"]["onnx"] == "models/yolact_edge.onnx"
    assert set(entry["max_abs_diff"]) == set(names)
    assert all(d <= 1e-4 for d in entry["max_abs_diff"].values())
    assert len(entry["outputs"]["onnx_sha256"]) == 64
