"""export's check compares what can be compared: network tensors within a tolerance, detections as
sets, marginal candidates (threshold, a full set's last slot, ties) excused (model/parity.py)."""
from __future__ import annotations

import numpy as np
import pytest

from yolact_edge_cli.model.config import CONFIGS, MOBILENETV2
from yolact_edge_cli.model.parity import Parity, compare_detections, compare_outputs

from .conftest import DATA

CFG = MOBILENETV2


def _detections(*rows, coefficient=0.0):
    """rows of (class, score, x1, y1, x2, y2), best first → the detect layout's slots."""
    n = CFG.max_num_detections
    boxes, scores, classes = np.zeros((n, 4), np.float32), np.zeros(n, np.float32), np.zeros(n, np.float32)
    coefficients = np.full((n, CFG.mask_dim), coefficient, np.float32)
    for i, (cls, score, *box) in enumerate(rows):
        boxes[i], scores[i], classes[i] = box, score, cls
    return boxes, scores, classes, coefficients, np.float32(len(rows))


def _conf(*scores_of_class_3):
    """PyTorch's class scores: class 3 (column 4) holds these candidates, others nothing."""
    conf = np.zeros((50, CFG.num_classes), np.float32)
    conf[: len(scores_of_class_3), 4] = scores_of_class_3
    return conf


A = (3, 0.6, 0.1, 0.1, 0.3, 0.3)
B = (3, 0.3, 0.5, 0.5, 0.7, 0.7)


def _compare(want, got, conf=None):
    parity = Parity()
    compare_detections(parity, want, got, CFG, _conf(0.6, 0.3) if conf is None else conf)
    return parity


def test_the_same_detections_in_another_order_match():
    near_a = (3, 0.6 + 1e-7, 0.1, 0.1, 0.3, 0.3 + 1e-7)
    parity = _compare(_detections(A, B), _detections(B, near_a))
    assert parity.ok and parity.matched == 2 and parity.marginal == 0
    assert parity.max_abs_diff["boxes"] == pytest.approx(1e-7, abs=2e-8)


def test_a_missing_detection_is_named():
    parity = _compare(_detections(A, B), _detections(B))
    assert not parity.ok
    assert "PyTorch's detection class 3 score 0.600000" in parity.problems[0]
    assert "no match in the graph's" in parity.problems[0]


def test_a_score_beyond_tolerance_or_another_class_does_not_match():
    assert not _compare(_detections(A), _detections((3, 0.6002, 0.1, 0.1, 0.3, 0.3))).ok
    assert not _compare(_detections(A), _detections((4, 0.6, 0.1, 0.1, 0.3, 0.3))).ok


def test_coefficients_of_the_same_prior_are_compared():
    parity = _compare(_detections(A), _detections(A, coefficient=0.01))
    assert not parity.ok and "coefficients" in parity.problems[0]


def test_a_candidate_at_the_threshold_may_be_on_one_side_only():
    at_threshold = (3, CFG.conf_thresh + 5e-6, 0.5, 0.5, 0.7, 0.7)
    parity = _compare(_detections(A, at_threshold), _detections(A))
    assert parity.ok and parity.marginal == 1


def test_a_tie_may_keep_either_candidate():
    """Two priors of one class scored within 1e-5: NMS or a top-k cut may keep one on one side
    and the other on the other side, though their boxes do not overlap."""
    other = (3, 0.3 + 2e-6, 0.0, 0.8, 0.1, 0.9)
    parity = _compare(_detections(A, B), _detections(A, other), conf=_conf(0.6, 0.3, 0.3 + 2e-6))
    assert parity.ok and parity.marginal == 2
    # without a near tie among PyTorch's candidates the same difference is a failure
    assert not _compare(_detections(A, B), _detections(A, other), conf=_conf(0.6, 0.3, 0.2)).ok


def test_a_full_set_may_cut_a_different_last_slot():
    rows = [(3, 0.9 - i * 1e-3, i / 200, 0.0, i / 200 + 0.004, 0.004) for i in range(CFG.max_num_detections)]
    extra = (5, 0.9 - 50.5e-3, 0.9, 0.9, 0.95, 0.95)  # enters the middle, pushes the last out
    conf = np.zeros((200, CFG.num_classes), np.float32)
    conf[0, 6] = extra[1]
    parity = _compare(_detections(*rows), _detections(*sorted([*rows[:-1], extra], key=lambda r: -r[1])), conf)
    assert not parity.ok  # the new detection is a real difference...
    assert len(parity.problems) == 1 and "class 5" in parity.problems[0]
    assert parity.marginal == 1  # ...the one it pushed out of the full set is not


def test_network_tensors_are_compared_value_by_value():
    want = [np.ones((1, 4), np.float32)]
    assert compare_outputs("head", ["loc"], want, [want[0] + 5e-5], CFG).ok
    parity = compare_outputs("head", ["loc"], want, [want[0] + 5e-3], CFG)
    assert not parity.ok and parity.problems[0].startswith("loc max|Δ|=5.00e-03")
    assert not compare_outputs("head", ["loc"], want, [want[0] * np.nan], CFG).ok


PHOTOS = [DATA / "astronaut.png", DATA / "coffee.png"]


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["fpn", "head", "detect"])
@pytest.mark.parametrize("config", [name for name, cfg in CONFIGS.items() if cfg.video is None])
def test_export_passes_its_check_for_every_config_layout_and_photo(tmp_path, checkpoint, config, layout):
    """Random checkpoints crowd their scores around the threshold and one another: the detect
    layout's old slot-by-slot check failed on MobileNetV2 with the bundled photo and coffee.png."""
    from yolact_edge_cli.steps import export
    from yolact_edge_cli.workspace import Workspace

    result = export.run(Workspace(tmp_path / "ws"), checkpoint(config),
                        export.ExportOptions(layout=layout, check_images=(*PHOTOS, export.SAMPLE_IMAGE)))
    limit = 1e-4 * 10  # relative to outputs' scale; softmax and tanh outputs are within 1
    assert result.max_abs_diff and all(v <= limit for v in result.max_abs_diff.values())
    if layout == "detect":
        assert {"loc", "conf", "mask", "proto", "scores"} <= set(result.max_abs_diff)
