"""COCO result entries written exactly as the reference's eval.py `Detections` writes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..model.config import COCO, LabelSet

if TYPE_CHECKING:
    from ..model.masks import ImageResult


@dataclass
class Detections:
    """One image's detections, compact enough to pass between processes: boxes in pixels
    (x1, y1, x2, y2), class indices, scores, and the masks as COCO RLEs (counts as text)."""

    boxes: np.ndarray
    classes: np.ndarray
    scores: np.ndarray
    rles: list[dict]

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def of(cls, result: ImageResult) -> Detections:
        rles = [dict(rle, counts=rle["counts"].decode("ascii")) for rle in encode_masks(result)]
        return cls(result.boxes, result.classes, result.scores, rles)


def encode_masks(result: ImageResult) -> list[dict]:
    """COCO RLEs of every mask (bytes counts, exactly as pycocotools' `encode` of the full masks
    gives them), from the masks' windows: no full-image mask is built."""
    from pycocotools import mask as mask_utils

    if len(result) == 0:
        return []
    height, width = result.height, result.width
    return mask_utils.frPyObjects([{"size": [height, width], "counts": counts}
                                   for counts in mask_runs(result)], height, width)


def mask_runs(result: ImageResult) -> list[list[int]]:
    """Uncompressed COCO RLE counts of every mask: column-major runs over the whole image,
    zeros first.

    All window columns are laid out in one strip, each between a zero above and a zero below, so
    every change in the strip is a run of ones starting or ending inside one column, at image
    position column * height + row. A run that ends at the foot of one column and one that
    starts at the head of the next are one run (their two changes share a position and cancel);
    a run that reaches the last pixel has no empty run after it. The counts are the gaps between
    a mask's changes, from 0 to height * width."""
    height, total = result.height, result.height * result.width
    tops = np.array([w.top for w in result.windows], np.int64)
    lefts = np.array([w.left for w in result.windows], np.int64)
    rows = np.array([w.bits.shape[0] for w in result.windows], np.int64) + 2  # with the two zeros
    cols = np.array([w.bits.shape[1] for w in result.windows], np.int64)
    starts = np.concatenate([[0], np.cumsum(rows * cols)])
    strip = np.zeros(int(starts[-1]) + 1, np.int8)
    for w, start, padded in zip(result.windows, starts.tolist(), rows.tolist()):
        if w.bits.size:
            strip[start:start + w.bits.size + 2 * w.bits.shape[1]].reshape(-1, padded)[:, 1:-1] = w.bits.T
    changed = np.flatnonzero(np.diff(strip)) + 1  # strip index of the first pixel after a change
    mask = np.searchsorted(starts, changed, side="right") - 1
    column, padded_row = np.divmod(changed - starts[mask], rows[mask])
    position = (lefts[mask] + column) * height + tops[mask] + padded_row - 1
    same = (position[1:] == position[:-1]) & (mask[1:] == mask[:-1])
    keep = position != total
    keep[1:] &= ~same
    keep[:-1] &= ~same
    position, mask = position[keep], mask[keep]
    previous = np.concatenate([[0], position[:-1]])
    first = np.searchsorted(mask, np.arange(len(result.windows)))
    previous[first[first < position.size]] = 0
    last = np.searchsorted(mask, np.arange(len(result.windows)), side="right") - 1
    tails = np.where(last >= first, total - position[np.maximum(last, 0)] if position.size else total, total)
    gaps = np.split(position - previous, first[1:])
    return [part.tolist() + [int(tail)] for part, tail in zip(gaps, tails)]


def kept_detections(boxes: np.ndarray) -> list[int]:
    """The detections results are written for: boxes of zero area are skipped, as the
    reference's eval.py does."""
    return [i for i in range(len(boxes)) if (boxes[i, 3] - boxes[i, 1]) * (boxes[i, 2] - boxes[i, 0]) > 0]


def coco_entries(image_id: int, result: ImageResult | Detections, rles: list[dict] | None = None,
                 labels: LabelSet = COCO) -> tuple[list[dict], list[dict]]:
    """bbox and mask entries for one image, with the category ids of the model's `labels`;
    boxes of zero area are skipped, as the reference does."""
    if rles is None:
        rles = result.rles if isinstance(result, Detections) else encode_masks(result)
    boxes, bbox_entries, mask_entries = result.boxes, [], []
    for i in kept_detections(boxes):
        rle = rles[i]
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        category = labels.category_ids[int(result.classes[i])]
        score = float(result.scores[i])
        bbox_entries.append({"image_id": int(image_id), "category_id": category,
                             "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                             "score": score})
        mask_entries.append({"image_id": int(image_id), "category_id": category,
                             "segmentation": {"size": [int(s) for s in rle["size"]],
                                              "counts": _text(rle["counts"])},
                             "score": score})
    return bbox_entries, mask_entries


def _text(counts: bytes | str) -> str:
    return counts.decode("ascii") if isinstance(counts, bytes) else counts
