"""The confusion matrix of eval's pictures (docs/pictures.md §3): which class each detection
was given against the class of the ground truth it covers. COCOeval matches within one class
only, so it cannot say which class a detection was confused with; this matches across classes,
one image at a time, as eval's results come."""
from __future__ import annotations

import numpy as np

CONFUSION_IOU = 0.5  # a detection covers a ground truth from this box IoU on
CONFUSION_SCORE = 0.25  # detections below this score are left out (most are noise at any class)


class ConfusionMatrix:
    """`counts[p, t]`: detections of class index p on a ground truth of class index t; the
    last row and column are the background: a ground truth no detection covers (missed), a
    detection that covers none (a false alarm). Each detection and each ground truth is used
    once, the pairs of highest IoU first. Crowd regions are not counted, nor the detections that
    fall on them (their IoU is COCO's crowd IoU: the share of the detection inside), nor, as in
    COCOeval, detections of a class the annotations do not list (a person-only set)."""

    def __init__(self, category_ids: list[int]):
        self.category_ids = list(category_ids)
        self._index = {c: n for n, c in enumerate(self.category_ids)}
        self.background = len(self.category_ids)
        self.counts = np.zeros((self.background + 1, self.background + 1), np.int64)

    def add(self, truths: list[dict], detections: list[dict]) -> None:
        """One image: COCO annotations (`category_id`, `bbox` as x, y, w, h, `iscrowd`) and COCO
        box results (`category_id`, `bbox`, `score`)."""
        from pycocotools import mask as mask_utils

        found = [d for d in detections if d["score"] >= CONFUSION_SCORE and d["category_id"] in self._index]
        plain = [t for t in truths if not t.get("iscrowd", 0)]
        crowd = [t for t in truths if t.get("iscrowd", 0)]
        covered = np.zeros(len(found), bool)
        if found and plain:
            iou = np.asarray(mask_utils.iou([d["bbox"] for d in found], [t["bbox"] for t in plain],
                                            [0] * len(plain)))
            rows, cols = np.nonzero(iou >= CONFUSION_IOU)
            order = np.argsort(-iou[rows, cols], kind="stable")
            used_truth = np.zeros(len(plain), bool)
            for row, col in zip(rows[order], cols[order]):
                if covered[row] or used_truth[col]:
                    continue
                covered[row] = used_truth[col] = True
                self.counts[self._index[found[row]["category_id"]], self._index[plain[col]["category_id"]]] += 1
            missed = [t for t, used in zip(plain, used_truth) if not used]
        else:
            missed = plain
        for truth in missed:
            self.counts[self.background, self._index[truth["category_id"]]] += 1
        on_crowd: np.ndarray = np.zeros(len(found), bool)
        if found and crowd:
            crowd_iou = np.asarray(mask_utils.iou([d["bbox"] for d in found], [t["bbox"] for t in crowd],
                                                  [1] * len(crowd)))
            on_crowd = np.any(crowd_iou >= CONFUSION_IOU, axis=1, keepdims=False)  # type: ignore[assignment]
        for detection, hit, crowded in zip(found, covered, on_crowd):
            if not hit and not crowded:
                self.counts[self._index[detection["category_id"]], self.background] += 1
