"""Mask assembly at the original image size: prototypes × coefficients → sigmoid → crop to the
(padded) box at proto resolution → bilinear resize → strict > 0.5; boxes to integer pixels."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import torch

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


@lru_cache(maxsize=64)
def _resize_taps(out_size: int, in_size: int):
    """Source indices and weights of align_corners=False bilinear resizing along one axis,
    computed as PyTorch does (float32, negative source coordinates clamped to 0)."""
    scale = np.float32(in_size / out_size)
    src = np.maximum((np.arange(out_size, dtype=np.float32) + np.float32(0.5)) * scale - np.float32(0.5),
                     np.float32(0))
    low = src.astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = (src - low).astype(np.float32)
    return low, high, (np.float32(1) - frac), frac


def _resize_window(mask: np.ndarray, rows, cols) -> np.ndarray:
    """Bilinear values of `mask` at the given output rows and columns (tap tuples)."""
    r_low, r_high, r_w0, r_w1 = rows
    c_low, c_high, c_w0, c_w1 = cols
    top, bottom = mask[r_low], mask[r_high]
    top = top[:, c_low] * c_w0 + top[:, c_high] * c_w1
    bottom = bottom[:, c_low] * c_w0 + bottom[:, c_high] * c_w1
    return top * r_w0[:, None] + bottom * r_w1[:, None]


def _span(low: np.ndarray, high: np.ndarray, first: int, last: int) -> tuple[int, int]:
    """Output range whose taps touch source indices first..last (taps are non-decreasing)."""
    return int(np.searchsorted(high, first, "left")), int(np.searchsorted(low, last, "right"))


def resize_masks(masks: torch.Tensor, height: int, width: int) -> np.ndarray:
    """[N, 138, 138] cropped probabilities → uint8 masks [N, height, width] of `> 0.5`.

    A cropped mask is zero outside its box, so only the output window whose bilinear taps
    touch the box is computed; everything else stays 0. The result is a view of an
    (H, W, N) Fortran-ordered array, the layout pycocotools encodes without a copy."""
    count, in_h, in_w = masks.shape
    out = np.zeros((height, width, count), dtype=np.uint8, order="F")
    rows, cols = _resize_taps(height, in_h), _resize_taps(width, in_w)
    data = masks.numpy()
    for i in range(count):
        nonzero_rows = np.flatnonzero(data[i].any(axis=1))
        if nonzero_rows.size == 0:
            continue
        nonzero_cols = np.flatnonzero(data[i].any(axis=0))
        r0, r1 = _span(rows[0], rows[1], nonzero_rows[0], nonzero_rows[-1])
        c0, c1 = _span(cols[0], cols[1], nonzero_cols[0], nonzero_cols[-1])
        window = _resize_window(data[i], tuple(t[r0:r1] for t in rows), tuple(t[c0:c1] for t in cols))
        out[r0:r1, c0:c1, i] = window > np.float32(0.5)
    return out.transpose(2, 0, 1)


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
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    pixel_boxes = torch.stack([x1, y1, x2, y2], dim=1).long()
    return ImageResult(classes.numpy().astype(np.int64), scores.numpy(),
                       pixel_boxes.numpy(), resize_masks(masks, height, width))
