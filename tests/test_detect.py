"""Detect's quirks, checked on constructed inputs."""
import numpy as np
import pytest
import torch

from yolact_edge_cli.errors import InputError
from yolact_edge_cli.model.config import RESNET50
from yolact_edge_cli.model.detect import best_per_class, decode, detect_image, fast_nms, greedy_nms, traditional_nms
from yolact_edge_cli.model.masks import postprocess


def literal_greedy_nms(dets: np.ndarray, threshold: float) -> list[int]:
    """A line-by-line port of the reference's Cython loop, as the oracle."""
    f = np.float32
    x1, y1, x2, y2, scores = (dets[:, i] for i in range(5))
    areas = (x2 - x1 + f(1)) * (y2 - y1 + f(1))
    order = scores.argsort()[::-1]
    suppressed = [False] * len(dets)
    for a in range(len(dets)):
        i = order[a]
        if suppressed[i]:
            continue
        for b in range(a + 1, len(dets)):
            j = order[b]
            if suppressed[j]:
                continue
            w = max(f(0), min(x2[i], x2[j]) - max(x1[i], x1[j]) + f(1))
            h = max(f(0), min(y2[i], y2[j]) - max(y1[i], y1[j]) + f(1))
            inter = f(w * h)
            if inter / (areas[i] + areas[j] - inter) >= f(threshold):
                suppressed[j] = True
    return [i for i in range(len(dets)) if not suppressed[i]]


def test_greedy_nms_matches_literal_port():
    rng = np.random.default_rng(1)
    for _ in range(5):
        xy = rng.uniform(0, 500, (300, 2)).astype(np.float32)
        wh = rng.uniform(5, 120, (300, 2)).astype(np.float32)
        boxes = np.concatenate([xy, xy + wh], 1)
        scores = rng.uniform(0, 1, 300).astype(np.float32)
        ours = greedy_nms(boxes, scores, 0.5).tolist()
        assert ours == literal_greedy_nms(np.concatenate([boxes, scores[:, None]], 1), 0.5)
        assert 0 < len(ours) < 300


def _candidates():
    # Three boxes of class 0: b overlaps a heavily; c overlaps b but not a.
    boxes = torch.tensor([[0.10, 0.10, 0.50, 0.50], [0.12, 0.12, 0.52, 0.52], [0.40, 0.40, 0.80, 0.80]])
    scores = torch.zeros(80, 3)
    scores[0] = torch.tensor([0.9, 0.8, 0.7])
    scores[5] = torch.tensor([0.01, 0.02, 0.03])  # below conf_thresh, still a candidate
    return boxes.numpy(), np.zeros((3, 32), np.float32), scores.t().numpy()  # [priors, classes]


def test_fast_nms_suppression_uses_suppressed_boxes_and_keeps_low_scores():
    boxes, coefs, scores = _candidates()
    det = fast_nms(boxes, coefs, scores, RESNET50)
    kept = sorted(zip(det.classes.tolist(), det.scores.tolist()))
    # class 0: b is suppressed by a; c survives (its overlap with b is < 0.5 and with a is 0).
    # class 5: the same geometry with reversed scores: c first, b kept (IoU(b,c) small), a dropped.
    assert [round(s, 2) for c, s in kept if c == 0] == [0.7, 0.9]
    assert [round(s, 2) for c, s in kept if c == 5] == [0.02, 0.03]
    assert det.scores.tolist() == sorted(det.scores.tolist(), reverse=True)


def test_traditional_nms_drops_low_class_scores():
    boxes, coefs, scores = _candidates()
    det = traditional_nms(boxes, coefs, scores, RESNET50)
    assert det.classes.tolist() == [0, 0]
    np.testing.assert_allclose(det.scores, [0.9, 0.7])
    np.testing.assert_allclose(det.boxes, boxes[[0, 2]], atol=1e-6)


def test_detect_returns_none_when_background_wins_everywhere():
    priors = torch.tensor([[0.5, 0.5, 0.2, 0.2]] * 4)
    conf = torch.zeros(4, 81)
    conf[:, 0] = 1.0
    assert detect_image(torch.zeros(4, 4), conf, torch.zeros(4, 32), priors, RESNET50) is None
    result = postprocess(None, torch.zeros(138, 138, 32), 640, 480)
    assert len(result) == 0 and result.masks.shape == (0, 480, 640)


def test_nan_scores_are_refused():
    conf = np.full((4, 81), 0.01, np.float32)
    conf[2, 7] = np.nan
    with pytest.raises(InputError, match="NaN"):
        detect_image(np.zeros((4, 4), np.float32), conf, np.zeros((4, 32), np.float32),
                     np.full((4, 4), 0.5, np.float32), RESNET50)


def test_detections_capped_at_100():
    rng = torch.Generator().manual_seed(0)
    n = 500
    centers = torch.rand(n, 2, generator=rng)
    priors = torch.cat([centers, torch.full((n, 2), 0.01)], 1)  # tiny, disjoint boxes
    conf = torch.softmax(torch.randn(n, 81, generator=rng) * 3, 1)
    det = detect_image(torch.zeros(n, 4), conf, torch.zeros(n, 32), priors, RESNET50, nms="traditional")
    assert len(det) == 100
    det = detect_image(torch.zeros(n, 4), conf, torch.zeros(n, 32), priors, RESNET50)
    assert len(det) == 100


def test_decode_x2_is_x1_plus_w():
    priors = torch.tensor([[0.3, 0.6, 0.1, 0.1]])
    loc = torch.tensor([[1.0, -2.0, 0.5, -0.5]])
    box = decode(loc.numpy(), priors.numpy())[0]
    w = 0.1 * np.exp(0.5 * 0.2)
    x1 = 0.3 + 1.0 * 0.1 * 0.1 - w / 2
    assert abs(float(box[0]) - x1) < 1e-6 and abs(float(box[2] - box[0]) - w) < 1e-6


def reference_fast_nms(boxes, coefs, scores, cfg):
    """The reference's batched formulation, as the oracle for our early-stopping one."""
    from yolact_edge_cli.model.detect import jaccard

    scores, idx = scores.sort(1, descending=True)
    idx, scores = idx[:, : cfg.top_k], scores[:, : cfg.top_k]
    c, k = idx.shape
    cls_boxes = boxes[idx.reshape(-1)].view(c, k, 4)
    keep = jaccard(cls_boxes, cls_boxes).triu_(diagonal=1).max(dim=1).values <= cfg.nms_thresh
    classes = torch.arange(c)[:, None].expand_as(keep)[keep]
    scores, order = scores[keep].sort(0, descending=True)
    return classes[order][: cfg.max_num_detections], scores[: cfg.max_num_detections]


@pytest.mark.parametrize("n, spread", [(50, 1.0), (3000, 1.0), (3000, 0.02)])
def test_fast_nms_equals_the_reference_formulation(n, spread):
    """Including the dense case (all boxes overlap), which takes the per-class fallback."""
    g = torch.Generator().manual_seed(n)
    xy = 0.5 + (torch.rand(n, 2, generator=g) - 0.5) * spread
    boxes = torch.cat([xy, xy + 0.05 + torch.rand(n, 2, generator=g) * 0.3], 1)
    scores = torch.softmax(torch.randn(80, n, generator=g) * 2, 0)
    det = fast_nms(boxes.numpy(), np.zeros((n, 32), np.float32), scores.t().numpy(), RESNET50)
    classes, ref_scores = reference_fast_nms(boxes, torch.zeros(n, 32), scores, RESNET50)
    assert det.classes.tolist() == classes.tolist()
    assert np.array_equal(det.scores, ref_scores.numpy())


def test_best_per_class_breaks_ties_by_lower_prior():
    """Each class's k best priors, best first, equal scores by lower prior (ONNX TopK's rule), also
    where ties straddle the k-th place, with few priors and with many (where only those above a
    bound are ranked): against a stable sort of each class."""
    rng = np.random.default_rng(0)
    for _ in range(300):
        n, classes, k = int(rng.integers(1, 3000)), int(rng.integers(1, 6)), int(rng.integers(1, 250))
        levels = int(rng.integers(1, 50))  # few distinct scores: ties everywhere
        scores = (rng.integers(0, levels, (n, classes)) / levels).astype(np.float32)
        k = min(k, n)
        values, priors = best_per_class(scores, k)
        for c in range(classes):
            want = np.argsort(-scores[:, c], kind="stable")[:k]
            assert np.array_equal(priors[c], want) and np.array_equal(values[c], scores[want, c])
