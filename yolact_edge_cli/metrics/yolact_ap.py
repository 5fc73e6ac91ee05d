"""YOLACT's own mAP (eval.py prep_metrics / APDataObject / calc_map): the metric the Ascend
recipe reports. Reproduced with its quirks: an image without detections adds no ground truth;
crowd annotations get class −1 and so never excuse a false positive; a class is averaged when it
has ground truth or predictions."""
from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass

import numpy as np

from ..model.config import COCO, LabelSet
from ..model.masks import ImageResult

IOU_THRESHOLDS = tuple(x / 100 for x in range(50, 100, 5))
IOU_TYPES = ("box", "mask")


@dataclass
class GroundTruth:
    boxes: np.ndarray    # [G, 4] float32 pixel x1y1x2y2, crowds excluded
    classes: list[int]   # 0..79
    masks: list          # [G] COCO RLEs


def ground_truth(coco, image_id: int, width: int, height: int, labels: LabelSet = COCO) -> GroundTruth:
    """One image's annotations as the model's classes (`labels`: its label set)."""
    anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
    # Crowd regions are left out: the reference gives them class −1, so they never match.
    plain = [a for a in anns if not a.get("iscrowd")]
    scale = np.array([width, height, width, height], dtype=np.float64)
    pixels = np.array([[a["bbox"][0], a["bbox"][1], a["bbox"][0] + a["bbox"][2],
                        a["bbox"][1] + a["bbox"][3]] for a in plain], dtype=np.float64).reshape(-1, 4)
    # The reference stores boxes relative to the image, then scales back in float32.
    boxes = (pixels / scale).astype(np.float32) * np.array(scale, dtype=np.float32)
    masks = [coco.annToRLE(a) for a in plain]
    label_map = labels.label_map
    classes = [label_map[a["category_id"]] - 1 for a in plain]
    return GroundTruth(boxes, classes, masks)


def box_iou(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """IoU matrix of x1y1x2y2 boxes (no +1), as the reference's jaccard."""
    lt = np.maximum(a[:, None, :2], b[None, :, :2])
    rb = np.minimum(a[:, None, 2:], b[None, :, 2:])
    wh = np.clip(rb - lt, 0, None)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1]))[:, None]
    area_b = ((b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1]))[None, :]
    return inter / (area_a + area_b - inter)


def mask_iou(pred: list, gt: list) -> np.ndarray:
    """intersection / union of binary masks, computed on their RLEs."""
    from pycocotools import mask as mask_utils

    if not pred or not gt:
        return np.zeros((len(pred), len(gt)))
    return np.asarray(mask_utils.iou(pred, gt, [0] * len(gt))).reshape(len(pred), len(gt))


# One image's contribution: (iou_type, threshold index, class) → (num_gt, [(score, is_tp), ...]).
ImageMatches = dict


def match_image(result: ImageResult, rles: list, gt: GroundTruth) -> ImageMatches:
    """Greedy per-class matching of one image's detections (with their mask RLEs)."""
    if len(result) == 0:
        return {}
    classes = [int(c) for c in result.classes]
    scores = [float(s) for s in result.scores]
    with np.errstate(invalid="ignore", divide="ignore"):
        ious = {"box": box_iou(result.boxes.astype(np.float32), gt.boxes),
                "mask": mask_iou(rles, gt.masks)}
    out: ImageMatches = {}
    for cls in set(classes + gt.classes):
        num_gt = sum(1 for c in gt.classes if c == cls)
        preds = [i for i in range(len(classes)) if classes[i] == cls]
        gts = [j for j in range(len(gt.classes)) if gt.classes[j] == cls]
        for t, threshold in enumerate(IOU_THRESHOLDS):
            for kind in IOU_TYPES:
                iou = ious[kind]
                used: set[int] = set()
                points = []
                for i in preds:
                    best, match = threshold, -1
                    for j in gts:
                        if j not in used and iou[i, j] > best:
                            best, match = iou[i, j], j
                    if match >= 0:
                        used.add(match)
                    points.append((scores[i], match >= 0))
                out[(kind, t, cls)] = (num_gt, points)
    return out


class APAccumulator:
    """Every detection's (score, matched) per (IoU type, threshold, class), over all images.
    Kept as flat arrays (9 bytes a point, not a Python tuple's ≈ 100), since a COCO-sized run
    has millions of points: memory grows with the detections, slowly."""

    def __init__(self):
        self.num_gt: dict = defaultdict(int)
        self.scores: dict = defaultdict(lambda: array("d"))
        self.matched: dict = defaultdict(lambda: array("b"))

    def add(self, matches: ImageMatches) -> None:
        for key, (num_gt, points) in matches.items():
            self.num_gt[key] += num_gt
            self.scores[key].extend(score for score, _ in points)
            self.matched[key].extend(bool(hit) for _, hit in points)

    def _ap(self, key) -> float:
        num_gt = self.num_gt[key]
        if num_gt == 0:
            return 0.0
        scores = np.frombuffer(self.scores[key], dtype=np.float64)
        order = np.argsort(-scores, kind="stable")  # ties in insertion order, like the reference
        tp = np.cumsum(np.frombuffer(self.matched[key], dtype=np.int8)[order].astype(np.int64))
        count = np.arange(1, len(order) + 1)
        precisions = list(tp / count)
        recalls = tp / num_gt
        for i in range(len(precisions) - 1, 0, -1):
            if precisions[i] > precisions[i - 1]:
                precisions[i - 1] = precisions[i]
        indices = np.searchsorted(recalls, np.array([x / 100 for x in range(101)]), side="left")
        return sum(precisions[i] if i < len(precisions) else 0 for i in indices) / 101

    def table(self) -> dict[str, dict[str, float]]:
        """{'box'|'mask': {'all': …, '50': …, …, '95': …}} in percent."""
        table = {}
        for kind in IOU_TYPES:
            row = {}
            for t, threshold in enumerate(IOU_THRESHOLDS):
                aps = [self._ap(key) for key in sorted(set(self.num_gt) | set(self.scores))
                       if key[0] == kind and key[1] == t and (self.num_gt[key] or len(self.scores[key]))]
                row[str(int(round(threshold * 100)))] = sum(aps) / len(aps) * 100 if aps else 0.0
            table[kind] = {"all": sum(row.values()) / len(row), **row}
        return table


def format_table(table: dict[str, dict[str, float]]) -> str:
    """The reference's printed table (the one the Ascend recipe's 27.96 comes from)."""
    header = ["", "all", *(str(int(round(t * 100))) for t in IOU_THRESHOLDS)]
    header = [h if i < 2 else "." + h for i, h in enumerate(header)]
    lines = [("|".join(f" {h:>5} " for h in header) + "|").rstrip(), "-------+" * 12]
    for kind in IOU_TYPES:
        values = [kind, *(f"{table[kind][k]:.2f}" for k in table[kind])]
        lines.append("|".join(f" {v:>5} " for v in values) + "|")
    lines.append("-------+" * 12)
    return "\n".join(lines)
