"""Mask assembly at the original image size: prototypes × coefficients → sigmoid → crop to the
(padded) box at proto resolution → bilinear resize → strict > 0.5; boxes to integer pixels."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from .detect import Detections


@dataclass
class ImageResult:
    """Final detections of one image in pixels: int x1y1x2y2 boxes, uint8 masks [N, H, W]."""

    classes: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    masks: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def sanitize_coordinates(a: torch.Tensor, b: torch.Tensor, size: int, padding: int = 0):
    """Relative coordinates → ordered, padded, clamped absolute ones (float, not cast)."""
    a, b = a * size, b * size
    low, high = torch.min(a, b), torch.max(a, b)
    return torch.clamp(low - padding, min=0), torch.clamp(high + padding, max=size)


def crop(masks: torch.Tensor, boxes: torch.Tensor, padding: int = 1) -> torch.Tensor:
    """Zero every mask [h, w, n] outside its box, padded by one proto pixel."""
    h, w, _ = masks.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], w, padding)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], h, padding)
    cols = torch.arange(w, dtype=x1.dtype).view(1, -1, 1)
    rows = torch.arange(h, dtype=x1.dtype).view(-1, 1, 1)
    keep = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    return masks * keep.to(masks.dtype)


def empty_result(height: int, width: int) -> ImageResult:
    return ImageResult(np.zeros(0, np.int64), np.zeros(0, np.float32),
                       np.zeros((0, 4), np.int64), np.zeros((0, height, width), np.uint8))


def postprocess(dets: Detections | None, proto: torch.Tensor, width: int, height: int,
                score_threshold: float = 0.0) -> ImageResult:
    """The reference's `postprocess(..., crop_masks=True)` for one image at width × height."""
    if dets is None:
        return empty_result(height, width)
    boxes, coefs, classes, scores = dets.boxes, dets.coefs, dets.classes, dets.scores
    if score_threshold > 0:
        keep = scores > score_threshold
        boxes, coefs, classes, scores = boxes[keep], coefs[keep], classes[keep], scores[keep]
    if scores.shape[0] == 0:
        return empty_result(height, width)
    masks = torch.sigmoid(proto @ coefs.t())
    masks = crop(masks, boxes).permute(2, 0, 1).contiguous()
    masks = F.interpolate(masks[None], (height, width), mode="bilinear", align_corners=False)[0]
    masks = masks > 0.5
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    pixel_boxes = torch.stack([x1, y1, x2, y2], dim=1).long()
    return ImageResult(classes.numpy().astype(np.int64), scores.numpy(),
                       pixel_boxes.numpy(), masks.numpy().astype(np.uint8))
