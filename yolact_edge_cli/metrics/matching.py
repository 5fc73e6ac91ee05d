"""Detections of two runs of one image matched to each other (compare, quantize's check)."""
from __future__ import annotations

import numpy as np


def match_detections(a, b, threshold: float = 0.5) -> tuple[int, list[float], list[float]]:
    """Greedy by A's score order: each A detection takes the unused same-class B detection with
    the highest box IoU, when that IoU is at least `threshold`. Two empty masks count as equal."""
    from pycocotools import mask as mask_utils

    from ..metrics.results import encode_masks
    from ..metrics.yolact_ap import box_iou, mask_iou

    if len(a) == 0 or len(b) == 0:
        return 0, [], []
    with np.errstate(invalid="ignore", divide="ignore"):
        boxes = np.nan_to_num(box_iou(a.boxes.astype(np.float64), b.boxes.astype(np.float64)))
    boxes[a.classes[:, None] != b.classes[None, :]] = -1.0
    rles_a, rles_b = encode_masks(a), encode_masks(b)
    masks = mask_iou(rles_a, rles_b)
    masks[(mask_utils.area(rles_a) == 0)[:, None] & (mask_utils.area(rles_b) == 0)[None, :]] = 1.0
    used = np.zeros(len(b), dtype=bool)
    box_ious, mask_ious = [], []
    for i in range(len(a)):
        candidates = np.where(used, -1.0, boxes[i])
        j = int(candidates.argmax())
        if candidates[j] >= threshold:
            used[j] = True
            box_ious.append(float(boxes[i, j]))
            mask_ious.append(float(masks[i, j]))
    return len(box_ious), box_ious, mask_ious
