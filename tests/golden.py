"""Access to the compact goldens in tests/data/golden (see tests/tools/compact_goldens.py)."""
from __future__ import annotations

import numpy as np

from .conftest import DATA

IMAGES = ("astronaut", "coffee")


class Golden:
    """A compact golden: `NAME__shape`, `NAME__idx`, `NAME__val` samples of each float tensor."""

    def __init__(self, image: str, file: str | None = None):
        self.image = image
        self.path = DATA / f"{image}.png"
        self.data = np.load(DATA / "golden" / (file or f"r50_seed0_{image}.npz"))

    def __getitem__(self, name: str) -> np.ndarray:
        return self.data[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.data[f"{name}__shape"])

    def check(self, name: str, ours: np.ndarray, rtol: float = 1e-3, atol: float = 1e-4) -> None:
        """Our full tensor against the golden's sampled values."""
        assert tuple(ours.shape) == self.shape(name), name
        got = np.asarray(ours).reshape(-1)[self.data[f"{name}__idx"]]
        np.testing.assert_allclose(got, self.data[f"{name}__val"], rtol=rtol, atol=atol, err_msg=name)

    def masks(self, name: str = "out0_masks") -> np.ndarray:
        shape = tuple(self.data[f"{name}__shape"])
        bits = np.unpackbits(self.data[f"{name}__bits"], axis=1)[:, : shape[1] * shape[2]]
        return bits.reshape(shape)


def mask_iou(a: np.ndarray, b: np.ndarray) -> float:
    union = np.logical_or(a, b).sum()
    return 1.0 if union == 0 else float(np.logical_and(a, b).sum() / union)


def assert_detections_match(result, golden: Golden) -> None:
    """Same count and classes in order, scores within 1e-4, boxes within 1 px, mask IoU ≥ 0.99."""
    assert len(result) == int(golden["out0_classes"].shape[0])
    np.testing.assert_array_equal(result.classes, golden["out0_classes"])
    np.testing.assert_allclose(result.scores, golden["out0_scores"], atol=1e-4)
    assert np.abs(result.boxes - golden["out0_boxes"]).max() <= 1
    for ours, theirs in zip(result.masks, golden.masks()):
        assert mask_iou(ours, theirs) >= 0.99


def paired_detections(classes, scores, boxes, golden_classes, golden_scores, golden_boxes,
                      box_atol: float) -> list[tuple[int, int]]:
    """(ours, golden) index pairs of the same class, score within 1e-4 and box within `box_atol`,
    each used once: the detections both sides share, whatever their order."""
    free = set(range(len(classes)))
    pairs = []
    for j in range(len(golden_classes)):
        candidates = [i for i in sorted(free) if classes[i] == golden_classes[j]
                      and abs(float(scores[i]) - float(golden_scores[j])) <= 1e-4
                      and np.abs(np.asarray(boxes[i], float) - np.asarray(golden_boxes[j], float)).max() <= box_atol]
        if candidates:
            best = min(candidates, key=lambda i: abs(float(scores[i]) - float(golden_scores[j])))
            free.remove(best)
            pairs.append((best, j))
    return pairs
