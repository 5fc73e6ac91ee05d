"""Mask assembly at the original image size: prototypes × coefficients → sigmoid → crop to the
(padded) box at proto resolution → bilinear resize → strict > 0.5; boxes to integer pixels.
Each mask is computed, kept and encoded only over the window its box can reach (docs/model.md §7)."""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from .detect import Detections


@dataclass
class MaskWindow:
    """One mask as the part of the image that can hold its pixels (its box, padded): uint8 bits
    [h, w] at (top, left); the mask is zero everywhere else."""

    top: int
    left: int
    bits: np.ndarray


@dataclass
class ImageResult:
    """Final detections of one image in pixels: int x1y1x2y2 boxes, and each mask as a window
    of a height × width image (`masks` gives them as full uint8 masks [N, H, W])."""

    classes: np.ndarray
    scores: np.ndarray
    boxes: np.ndarray
    windows: list[MaskWindow]
    height: int
    width: int

    def __len__(self) -> int:
        return int(self.scores.shape[0])

    @classmethod
    def from_masks(cls, classes, scores, boxes, masks: np.ndarray) -> ImageResult:
        """From full masks [N, H, W] (each a window of the whole image)."""
        _, height, width = masks.shape
        return cls(classes, scores, boxes, [MaskWindow(0, 0, np.asarray(m, np.uint8)) for m in masks],
                   height, width)

    def subset(self, keep: list[int]) -> ImageResult:
        return ImageResult(self.classes[keep], self.scores[keep], self.boxes[keep],
                           [self.windows[i] for i in keep], self.height, self.width)

    @property
    def masks(self) -> np.ndarray:
        full = np.zeros((len(self.windows), self.height, self.width), np.uint8)
        for i, w in enumerate(self.windows):
            full[i, w.top:w.top + w.bits.shape[0], w.left:w.left + w.bits.shape[1]] = w.bits
        return full


def sanitize_coordinates(a: np.ndarray, b: np.ndarray, size: int, padding: int = 0):
    """Relative coordinates → ordered, padded, clamped absolute ones (float, not cast)."""
    a, b = a * size, b * size
    low, high = np.minimum(a, b), np.maximum(a, b)
    return np.clip(low - padding, 0, None), np.clip(high + padding, None, size)


def empty_result(height: int, width: int) -> ImageResult:
    return ImageResult(np.zeros(0, np.int64), np.zeros(0, np.float32), np.zeros((0, 4), np.int64), [],
                       height, width)


def _fused(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """float32 a * b + c rounded once, as a fused multiply-add (b in float64: it holds the exact
    product of two float32 values)."""
    return (a.astype(np.float64) * b + c).astype(np.float32)


@lru_cache(maxsize=64)
def _resize_taps(out_size: int, in_size: int):
    """Source indices and weights of align_corners=False bilinear resizing along one axis,
    computed as PyTorch does: float32, the source coordinate (i + 0.5) * scale - 0.5 as one fused
    multiply-add, negative ones clamped to 0."""
    scale = np.float32(in_size) / np.float32(out_size)
    src = np.maximum(_fused(np.arange(out_size, dtype=np.float32) + np.float32(0.5), np.float64(scale),
                            np.float64(-0.5)), np.float32(0))
    low = src.astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = (src - low).astype(np.float32)
    return low, high, (np.float32(1) - frac), frac


def sigmoid(x: np.ndarray) -> np.ndarray:
    """1 / (1 + e^-x) in float32 (e^-x overflowing to infinity gives 0, as it should)."""
    with np.errstate(over="ignore"):
        return np.float32(1) / (np.float32(1) + np.exp(-x))


def mask_windows(logits: np.ndarray, boxes: np.ndarray, height: int, width: int) -> list[MaskWindow]:
    """Each mask at height × width: the sigmoid of its logits [h, w, N] cropped to its box padded
    by one proto pixel (the sigmoid taken inside the crop only), resized bilinearly
    (align_corners=False) and thresholded at strictly > 0.5.

    The crop zeroes everything outside the box, so only the output window whose bilinear taps
    touch the box can be set: that window alone is computed, from the box's values with a ring
    of zeros around them (every tap of the window lands in box or ring). PyTorch computes each
    t0 * w0 + t1 * w1 as fma(t0, w0, t1 * w1), along the source rows first, then across them:
    plain float32 arithmetic is within a few ulps of that, so only a window with a value that
    close to 0.5 is computed again with the fused operations (float64 holds the exact
    products), and the masks are bit for bit PyTorch's."""
    proto_h, proto_w, _ = logits.shape
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], proto_w, padding=1)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], proto_h, padding=1)
    row_low, row_high, row_w0, row_w1 = _resize_taps(height, proto_h)
    col_low, col_high, col_w0, col_w1 = _resize_taps(width, proto_w)
    # the crop keeps proto pixels p with low <= p < high: p from ceil(low) to ceil(high) - 1
    r_lo, r_hi, c_lo, c_hi = np.ceil(np.stack([y1, y2, x1, x2])).astype(np.int64)
    r0, r1 = np.searchsorted(row_high, r_lo, "left"), np.searchsorted(row_low, r_hi - 1, "right")
    c0, c1 = np.searchsorted(col_high, c_lo, "left"), np.searchsorted(col_low, c_hi - 1, "right")
    half = np.float32(0.5)
    windows = []
    for i in range(len(r_lo)):
        if r_hi[i] <= r_lo[i] or c_hi[i] <= c_lo[i]:
            windows.append(MaskWindow(0, 0, np.zeros((0, 0), np.uint8)))
            continue
        box = np.zeros((r_hi[i] - r_lo[i] + 2, c_hi[i] - c_lo[i] + 2), np.float32)
        box[1:-1, 1:-1] = sigmoid(logits[r_lo[i]:r_hi[i], c_lo[i]:c_hi[i], i])
        rows, cols = slice(r0[i], r1[i]), slice(c0[i], c1[i])
        taps = (row_low[rows] - (r_lo[i] - 1), row_high[rows] - (r_lo[i] - 1),
                col_low[cols] - (c_lo[i] - 1), col_high[cols] - (c_lo[i] - 1))
        weights = (row_w0[rows, None], row_w1[rows, None], col_w0[cols], col_w1[cols])
        across = box[:, taps[2]] * weights[2] + box[:, taps[3]] * weights[3]
        above = across[taps[0]] * weights[0] + across[taps[1]] * weights[1] - half
        if np.abs(above).min(initial=1.0) < np.float32(1e-6):
            above = _fused_bilinear(box, taps, weights) - half
        windows.append(MaskWindow(int(r0[i]), int(c0[i]), (above > 0).view(np.uint8)))
    return windows


def _fused_bilinear(box: np.ndarray, taps: tuple, weights: tuple) -> np.ndarray:
    """The window's values as PyTorch rounds them: fma(t0, w0, t1 * w1) along the source rows,
    then across them."""
    row_low, row_high, col_low, col_high = taps
    row_w0, row_w1, col_w0, col_w1 = weights
    across = _fused(box[:, col_low], col_w0.astype(np.float64), box[:, col_high] * col_w1)
    return _fused(across[row_low], row_w0.astype(np.float64), across[row_high] * row_w1)


def postprocess(dets: Detections | None, proto, width: int, height: int,
                score_threshold: float = 0.0) -> ImageResult:
    """The reference's `postprocess(..., crop_masks=True)` for one image at width × height;
    proto [h, w, 32] (a float32 array, or anything numpy reads as one)."""
    if dets is None:
        return empty_result(height, width)
    boxes, coefs, classes, scores = dets.boxes, dets.coefs, dets.classes, dets.scores
    if score_threshold > 0:
        keep = scores > score_threshold
        boxes, coefs, classes, scores = boxes[keep], coefs[keep], classes[keep], scores[keep]
    if scores.shape[0] == 0:
        return empty_result(height, width)
    proto = np.asarray(proto, np.float32)
    # one [h·w, 32] × [32, n] product, as the reference's matmul computes it
    logits = (proto.reshape(-1, proto.shape[-1]) @ coefs.T).reshape(*proto.shape[:-1], -1)
    x1, x2 = sanitize_coordinates(boxes[:, 0], boxes[:, 2], width)
    y1, y2 = sanitize_coordinates(boxes[:, 1], boxes[:, 3], height)
    pixel_boxes = np.stack([x1, y1, x2, y2], axis=1).astype(np.int64)
    return ImageResult(classes.astype(np.int64), scores, pixel_boxes,
                       mask_windows(logits, boxes, height, width), height, width)
