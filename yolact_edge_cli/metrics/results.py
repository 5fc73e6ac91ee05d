"""COCO result entries written exactly as the reference's eval.py `Detections` writes them."""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from ..model.config import COCO_CATEGORY_IDS

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
    """COCO RLEs of every mask (no copy when masks come from `resize_masks`)."""
    from pycocotools import mask as mask_utils

    if len(result) == 0:
        return []
    return mask_utils.encode(np.asfortranarray(result.masks.transpose(1, 2, 0)))


def kept_detections(boxes: np.ndarray) -> list[int]:
    """The detections results are written for: boxes of zero area are skipped, as the
    reference's eval.py does."""
    return [i for i in range(len(boxes)) if (boxes[i, 3] - boxes[i, 1]) * (boxes[i, 2] - boxes[i, 0]) > 0]


def coco_entries(image_id: int, result: ImageResult | Detections, rles: list[dict] | None = None,
                 ) -> tuple[list[dict], list[dict]]:
    """bbox and mask entries for one image; boxes of zero area are skipped, as the reference does."""
    if rles is None:
        rles = result.rles if isinstance(result, Detections) else encode_masks(result)
    boxes, bbox_entries, mask_entries = result.boxes, [], []
    for i in kept_detections(boxes):
        rle = rles[i]
        x1, y1, x2, y2 = (int(v) for v in boxes[i])
        category = COCO_CATEGORY_IDS[int(result.classes[i])]
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
