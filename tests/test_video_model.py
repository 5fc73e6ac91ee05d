"""The video configs reproduce the reference's keyframe and non-keyframe passes (docs/video.md):
the goldens of ../shared/reference/video, compacted into tests/data/golden by
tests/tools/compact_goldens.py."""
import json

import numpy as np
import pytest
import torch

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.errors import InputError
from yolact_edge_cli.model.checkpoint import expected_shapes, load_model, match_config
from yolact_edge_cli.model.config import CONFIGS, LABEL_SETS, YOUTUBE_VIS
from yolact_edge_cli.model.detect import decode, detect_image
from yolact_edge_cli.model.flow import warp
from yolact_edge_cli.model.head import priors_tensor
from yolact_edge_cli.model.masks import postprocess
from yolact_edge_cli.model.parity import Parity, compare_detections
from yolact_edge_cli.model.random_checkpoint import random_state_dict

from .conftest import DATA
from .golden import Golden, mask_iou, paired_detections

GOLDENS = {"yolact_edge_vid_resnet50_config": "r50vid_seed0_astronaut_shift.npz",
           "yolact_edge_vid_minimal_resnet50_config": "r50vidmin_seed0_astronaut_shift.npz"}


def shifted_astronaut() -> np.ndarray:
    """Frame 1 of the goldens: frame 0 rolled 6 px right and 4 px down (docs/video.md §5)."""
    golden = Golden("astronaut", GOLDENS["yolact_edge_vid_resnet50_config"])
    dx, dy = (int(v) for v in golden["shift_dxdy"])
    return np.roll(read_image(DATA / "astronaut.png"), (dy, dx), axis=(0, 1))


@pytest.fixture(scope="module", params=sorted(GOLDENS))
def passes(request, checkpoint):
    """The model loaded with --config auto from the random checkpoint; k0 and n1 as the
    reference ran them, with the intermediate tensors of the non-keyframe pass."""
    name = request.param
    golden = Golden("astronaut", GOLDENS[name])
    assert str(golden["config"]) == name
    net = load_model(checkpoint(name), "auto")
    assert net.cfg.name == name
    frame0 = preprocess(read_image(DATA / "astronaut.png"))[None]
    frame1 = preprocess(shifted_astronaut())[None]
    out: dict[str, torch.Tensor] = {"k0_input": torch.from_numpy(frame0),
                                    "n1_input": torch.from_numpy(frame1)}
    with torch.no_grad():
        maps, proto, key = net.keyframe(out["k0_input"])
        key_p4, key_p5, key_lateral = key
        out.update(stat_feat_p4=key_p4, stat_feat_p5=key_p5, stat_lateral=key_lateral)
        out.update(_outputs(net, "k0", maps, proto))
        lateral = net.fpn_phase_1.c3_lateral(net.backbone.c3(out["n1_input"]))
        pre_cur, pre_key = net.flow_net_pre_convs(lateral), net.flow_net_pre_convs(key_lateral)
        out.update(n1_lateral=lateral, n1_pre_cur=pre_cur, n1_pre_key=pre_key)
        for level, (flow, scale, shift), key_map in zip((4, 5), net.flow_net(pre_cur, pre_key),
                                                         (key_p4, key_p5)):
            out[f"n1_flow_p{level}"], out[f"n1_scale_p{level}"] = flow, scale
            out[f"n1_bias_p{level}"] = shift
            out[f"n1_warp_p{level}"] = warp(key_map, flow)
            out[f"n1_warped_p{level}"] = out[f"n1_warp_p{level}"] * scale + shift
        maps, proto = net.non_keyframe(out["n1_input"], *key)
        out.update(_outputs(net, "n1", maps, proto))
    return name, net, golden, out


def _outputs(net, tag: str, maps, proto) -> dict[str, torch.Tensor]:
    loc, conf, coef = net.heads(maps)
    out = {f"{tag}_p{level + 3}": m for level, m in enumerate(maps)}
    out.update({f"{tag}_proto": proto, f"{tag}_loc": loc, f"{tag}_conf": conf,
                f"{tag}_mask_coef": coef})
    return out


def test_every_sampled_tensor_of_both_passes(passes):
    _, _, golden, out = passes
    checked = sorted(name for name in out if f"{name}__idx" in golden.data.files)
    assert len(checked) == len(out)
    for name in checked:
        golden.check(name, out[name].numpy())


def test_the_warp_moves_the_keyframe_features(passes):
    """The flow of the random checkpoint is large enough that warping is not the identity."""
    _, _, _, out = passes
    moved = (out["n1_warp_p4"] - out["stat_feat_p4"]).abs()
    assert float(out["n1_flow_p4"].abs().max()) > 0.5 and float(moved.max()) > 0.5


def test_the_spa_config_refines_and_the_minimal_config_does_not(passes):
    """`n1_phase1_p4/p5` (the fpn_phase_2 inputs) equal the warped maps only without SPA."""
    name, net, golden, out = passes
    phase1 = golden.data["n1_phase1_p4__val"]
    warped = out["n1_warped_p4"].numpy().reshape(-1)[golden.data["n1_phase1_p4__idx"]]
    assert np.allclose(warped, phase1, atol=1e-4, rtol=1e-3) == (not net.cfg.video.use_spa)


@pytest.mark.parametrize("tag", ["k0", "n1"])
def test_detections_and_masks(passes, tag):
    """The reference's 100 detections, compared as export's check compares detections
    (model/parity.py): matched by class, score and box, and any left over a near-tie — the
    random checkpoint crowds its scores, and which of two candidates a few 1e-6 apart survives
    NMS can change with the CPU's kernels (it does under an SSE4.2 limit; on this CPU all 100
    match and every mask equals the reference's pixel for pixel). Matched masks: IoU ≥ 0.99."""
    name, net, golden, out = passes
    priors = priors_tensor(net.cfg)
    golden.check("priors", priors.numpy(), rtol=0, atol=0)
    loc, conf, coef = (out[f"{tag}_{k}"][0] for k in ("loc", "conf", "mask_coef"))
    golden.check(f"{tag}_decoded_boxes", decode(loc.numpy(), priors.numpy())[None])
    det = detect_image(loc, conf, coef, priors, net.cfg)
    assert det is not None and len(det) == int(golden[f"{tag}_det_count"][0])
    parity = Parity()
    reference = (*(golden[f"{tag}_det_{k}"] for k in ("box", "score", "class", "coef")),
                 golden[f"{tag}_det_count"][0])
    compare_detections(parity, reference, (det.boxes, det.scores, det.classes, det.coefs, len(det)),
                       net.cfg, conf.numpy())
    assert parity.ok and parity.matched >= 95, parity.problems
    width, height = (int(v) for v in golden["frame_wh"])
    result = postprocess(det, out[f"{tag}_proto"][0], width, height)
    masks = golden.masks(f"{tag}_out_masks")
    pairs = paired_detections(result.classes, result.scores, result.boxes, golden[f"{tag}_out_classes"],
                              golden[f"{tag}_out_scores"], golden[f"{tag}_out_boxes"], box_atol=1)
    assert len(pairs) >= parity.matched - 1
    for i, j in pairs:
        assert mask_iou(result.masks[i], masks[j]) >= 0.99


def test_the_video_label_set():
    assert len(YOUTUBE_VIS.names) == 40 and YOUTUBE_VIS.names[:2] == ("person", "giant_panda")
    for name in GOLDENS:
        assert CONFIGS[name].num_classes == 41 and CONFIGS[name].labels is YOUTUBE_VIS


@pytest.mark.parametrize("labels", LABEL_SETS, ids=lambda labels: labels.dataset)
def test_the_docs_list_every_class_name(labels):
    """The page each label set names for users (--classes' hint) lists its classes, by index."""
    import re
    from pathlib import Path

    page, section = labels.listed_in.split(" §")
    text = (Path(__file__).resolve().parents[1] / page).read_text()
    assert re.search(rf"^## {section}\.", text, re.M)
    block = re.search(r"<!-- begin class names -->\s*```(.*?)```", text, re.S)
    assert block is not None
    listed = [line.split(" ", 1) for line in block.group(1).strip().splitlines()]
    assert listed == [[str(i), name] for i, name in enumerate(labels.names)]


@pytest.mark.parametrize("r101, r50", [
    ("yolact_edge_vid_config", "yolact_edge_vid_resnet50_config"),
    ("yolact_edge_vid_minimal_config", "yolact_edge_vid_minimal_resnet50_config")])
def test_the_resnet101_video_keys_follow_from_the_reference_lists(r101, r50):
    """No R-101 video key list was measured: it is the R-101 image list with the R-50 video
    list's changes (41-class shapes, the flow keys inserted after fpn_phase_2)."""
    image50 = json.loads((DATA / "keys" / "yolact_edge_resnet50_config.json").read_text())
    video50 = json.loads((DATA / "keys" / f"{r50}.json").read_text())
    image101 = json.loads((DATA / "keys" / "yolact_edge_config.json").read_text())
    image50_keys = {k for k, _ in image50}
    changed = {k: s for k, s in video50 if k in image50_keys}
    added = [[k, s] for k, s in video50 if k not in image50_keys]
    split = max(i for i, (k, _) in enumerate(image101) if k.startswith("fpn_phase_2.")) + 1
    expected = [[k, changed.get(k, s)] for k, s in image101]
    expected = expected[:split] + added + expected[split:]
    assert [[k, list(s)] for k, s in expected_shapes(r101).items()] == expected


def test_runtime_named_checkpoints_are_refused():
    """A state_dict of the reference's running model (its runtime key list) names the flow net
    `flow_net.flow_net.*`; the reference would silently re-initialise it, we refuse it."""
    runtime = json.loads((DATA / "keys" / "yolact_edge_vid_resnet50_config.runtime.json").read_text())
    state = {key: torch.zeros(shape) for key, shape in runtime}
    assert any(k.startswith("flow_net.flow_net.") for k in state)
    with pytest.raises(InputError) as caught:
        match_config(state, "auto", "vid.pth")
    message = str(caught.value)
    assert "flow_net.flow_net.*" in message and "partial_backbone.*" in message
    assert "rename flow_net.flow_net.* to flow_net.*" in caught.value.hint


def test_an_image_config_on_a_video_checkpoint_names_the_video_config():
    state = random_state_dict(CONFIGS["yolact_edge_vid_minimal_resnet50_config"])
    with pytest.raises(InputError) as caught:
        match_config(state, "yolact_edge_resnet50_config", "vid.pth")
    assert "yolact_edge_vid_minimal_resnet50_config" in caught.value.hint
