"""What eval's pictures are drawn from, read off the COCOeval that gave the mAP (docs/pictures.md):
the precision at each recall threshold per IoU threshold and class, the per-class AP, and the
scores of the true and false positives at IoU 0.5. Nothing here matches detections again."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

AREA_ALL = 0  # COCOeval's areaRng index of "all"


@dataclass
class Curves:
    """One IoU type's curves: `precision[t, r, k]` is COCOeval's `eval['precision']` at IoU
    threshold t, recall threshold r and class k, over all areas at its largest maxDets (-1 where
    class k has no ground truth). `tp_scores`/`fp_scores`: the scores of the detections matched
    and not matched at IoU 0.5 (crowd-matched ones left out, as COCOeval ignores them); None when
    the evaluator kept no per-image matches (faster-coco-eval)."""

    iou_type: str
    iou_thresholds: np.ndarray
    recall_thresholds: np.ndarray
    category_ids: list[int]
    precision: np.ndarray
    tp_scores: np.ndarray | None = None
    fp_scores: np.ndarray | None = None

    @classmethod
    def read(cls, evaluator, iou_type: str, matches=None) -> Curves:
        """From a COCOeval after `accumulate()`. `matches`: the (scores, matched, ignored)
        triples of each image and class at area "all"; by default read from its `evalImgs`."""
        params = evaluator.params
        precision = np.asarray(evaluator.eval["precision"])[:, :, :, AREA_ALL, -1]
        if matches is None and evaluator.evalImgs:
            matches = [(np.asarray(e["dtScores"]), np.asarray(e["dtMatches"]) > 0, np.asarray(e["dtIgnore"]) > 0)
                       for e in evaluator.evalImgs
                       if e is not None and list(e["aRng"]) == list(params.areaRng[AREA_ALL])]
        tp = fp = None
        if matches is not None:
            tp_parts, fp_parts = [np.zeros(0)], [np.zeros(0)]
            for scores, matched, ignored in matches:
                counted = ~ignored[0]
                tp_parts.append(scores[counted & matched[0]])
                fp_parts.append(scores[counted & ~matched[0]])
            tp, fp = np.sort(np.concatenate(tp_parts)), np.sort(np.concatenate(fp_parts))  # any image order
        return cls(iou_type, np.asarray(params.iouThrs, np.float64), np.asarray(params.recThrs, np.float64),
                   [int(c) for c in params.catIds], precision, tp, fp)

    def per_class_ap(self) -> tuple[np.ndarray, np.ndarray]:
        """(AP over IoU 0.5:0.95, AP at IoU 0.5) per class in points, NaN for a class without
        ground truth: COCOeval's own summary restricted to one class."""
        return _mean_known(self.precision, axis=(0, 1)) * 100, _mean_known(self.precision[:1], axis=(0, 1)) * 100

    def mean_curve(self, iou: str, classes: list[int] | None = None) -> np.ndarray:
        """Precision at each recall threshold, averaged over `classes` (indices; default all) and,
        for iou "0.5:0.95", over the IoU thresholds: the curve whose area is the AP eval reports."""
        chosen = self.precision if iou == "0.5:0.95" else self.precision[:1]
        if classes is not None:
            chosen = chosen[:, :, classes]
        return _mean_known(chosen, axis=(0, 2))


def _mean_known(values: np.ndarray, axis) -> np.ndarray:
    """The mean over `axis` of the entries that are not -1 (COCOeval's "no ground truth"), NaN
    where none is."""
    known = values > -1
    count = known.sum(axis=axis)
    total = np.where(known, values, 0.0).sum(axis=axis)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def per_class_table(curves: dict[str, Curves], names: dict[int, str], instances: dict[int, int]) -> list[dict]:
    """One row per class of the evaluation: its ground-truth instances, and its box and mask AP
    over IoU 0.5:0.95 and at 0.5 in points (None for a class without ground truth or without
    any detection of that IoU type)."""
    aps = {t: c.per_class_ap() for t, c in curves.items()}
    category_ids = next(iter(curves.values())).category_ids if curves else sorted(instances)
    rows = []
    for n, category in enumerate(category_ids):
        row: dict = {"category_id": category, "name": names.get(category, str(category)),
                     "instances": instances.get(category, 0)}
        for iou_type, kind in (("bbox", "box"), ("segm", "mask")):
            ap, ap50 = aps[iou_type] if iou_type in aps else (None, None)
            row[f"{kind}_AP"] = None if ap is None or np.isnan(ap[n]) else round(float(ap[n]), 2)
            row[f"{kind}_AP50"] = None if ap50 is None or np.isnan(ap50[n]) else round(float(ap50[n]), 2)
        rows.append(row)
    return rows


def classes_with_truth(rows: list[dict]) -> list[dict]:
    """The per-class rows of classes with ground truth, most instances first: the table eval
    prints and the report shows."""
    return sorted((r for r in rows if r["instances"]), key=lambda r: -r["instances"])
