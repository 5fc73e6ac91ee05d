"""Box decoding and Detect on the host, in numpy: confidence filtering, then fast NMS (the Ascend
recipe's choice) or traditional greedy NMS (yolact_edge's own default), capped at 100 detections
per image.

The arithmetic follows docs/model.md §4 and §6 operation by operation, quirks included, so
detections match the reference's bit for bit where the float ops allow. `decode` and `jaccard`
take numpy arrays or torch tensors alike: the detect layout's `DeviceDetect`
(model/device_detect.py) builds its graph from the same two functions. Nothing here imports
torch, so the head and detect layouts are post-processed without it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ..choices import Nms
from ..errors import InputError
from .config import ModelConfig

NMS_METHODS = Nms.values()
VARIANCES = (0.1, 0.2)
# Largest candidate set fast_nms compares pairwise before using the per-class computation.
FAST_NMS_WINDOW = 2048
# DeviceDetect's score for what is not a candidate: below every softmax score, so it sorts last.
NOT_A_CANDIDATE = -1.0


@dataclass
class Detections:
    """Detect's output for one image: relative x1y1x2y2 boxes, mask coefficients, classes 0..79."""

    boxes: np.ndarray
    coefs: np.ndarray
    classes: np.ndarray
    scores: np.ndarray

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def _namespace(x: Any) -> Any:
    """numpy for arrays, torch for tensors (imported only then): the functions both use name
    the same operations in both."""
    if isinstance(x, np.ndarray):
        return np
    import torch

    return torch


def decode(loc, priors):
    """(cx, cy, w, h) priors + offsets [..., P, 4] → x1y1x2y2, with x2 computed as x1 + w like
    the reference."""
    xp = _namespace(loc)
    centers = priors[:, :2] + loc[..., :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * xp.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centers - sizes / 2
    return xp.concatenate([top_left, top_left + sizes], axis=-1)


def jaccard(a, b):
    """Batched IoU [n, A, B] of x1y1x2y2 boxes, no +1 on widths."""
    xp = _namespace(a)

    def overlap(low: int, high: int):  # along one axis, per pair: [n, A, B]
        return xp.clip(xp.minimum(a[:, :, None, high], b[:, None, :, high])
                       - xp.maximum(a[:, :, None, low], b[:, None, :, low]), 0, None)

    inter = overlap(0, 2) * overlap(1, 3)
    area_a = ((a[:, :, 2] - a[:, :, 0]) * (a[:, :, 3] - a[:, :, 1]))[:, :, None]
    area_b = ((b[:, :, 2] - b[:, :, 0]) * (b[:, :, 3] - b[:, :, 1]))[:, None, :]
    return inter / (area_a + area_b - inter)


def best_per_class(scores: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k best priors of each class of scores [n, classes], best first, exactly equal scores
    by lower prior (ONNX TopK's rule): scores and prior indices, both [classes, k]."""
    by_class = np.ascontiguousarray(scores.T)
    num_classes, n = by_class.shape
    if k >= n:
        priors = np.broadcast_to(np.arange(n), (num_classes, n))
    elif n // k < 4:
        priors = _top_columns(by_class, k)
    else:
        priors = _top_columns_among_few(by_class, k)
    values = np.take_along_axis(by_class, priors, axis=1)
    order = np.argsort(-values, axis=1, kind="stable")
    return np.take_along_axis(values, order, axis=1), np.take_along_axis(priors, order, axis=1)


def _top_columns(rows: np.ndarray, k: int) -> np.ndarray:
    """Each row's k largest values' columns [rows, k], ascending; of values equal to the k-th,
    the lowest columns."""
    n = rows.shape[1]
    kth = np.partition(rows, n - k, axis=1)[:, n - k, None]
    chosen = rows >= kth
    excess = chosen.sum(axis=1) > k
    if excess.any():  # values tied with the k-th: the lowest columns among them, to make k
        tied = rows[excess] == kth[excess]
        room = k - (rows[excess] > kth[excess]).sum(axis=1, keepdims=True)
        chosen[excess] &= ~tied | (np.cumsum(tied, axis=1) <= room)
    return np.nonzero(chosen)[1].reshape(rows.shape[0], k)


def _top_columns_among_few(rows: np.ndarray, k: int) -> np.ndarray:
    """`_top_columns` of wide rows (thousands of priors, a class keeps 200), done on the few
    that can make it: cut each row into k interleaved groups (columns j, j + k, j + 2k, …); every
    group holds a value at least its maximum, so at least k values reach the smallest group
    maximum, and the k largest are among those. Interleaved, not contiguous, groups: neighbouring
    priors score alike, so a contiguous group's maximum is a weak bound."""
    num_rows, n = rows.shape
    width = n // k
    floor = rows[:, : k * width].reshape(num_rows, width, k).max(axis=1).min(axis=1)
    candidate = rows >= floor[:, None]
    counts = candidate.sum(axis=1)
    row, column = np.nonzero(candidate)  # row by row, columns ascending
    place = np.arange(row.size) - (np.cumsum(counts) - counts)[row]
    # the candidates packed to the left, padded with -inf (below every candidate: never chosen)
    packed = np.full((num_rows, int(counts.max())), -np.inf, rows.dtype)
    packed_columns = np.zeros(packed.shape, np.int64)
    packed[row, place] = rows[row, column]
    packed_columns[row, place] = column
    return np.take_along_axis(packed_columns, _top_columns(packed, k), axis=1)


def fast_nms(boxes: np.ndarray, coefs: np.ndarray, scores: np.ndarray, cfg: ModelConfig) -> Detections:
    """Per-class fast NMS over scores [n, 80]: a class's candidates are its top_k priors; one is
    dropped when a higher-scored candidate of its class overlaps it by more than the threshold,
    suppressed or not; the 100 best survivors are kept.

    A candidate's fate depends only on higher-scored candidates of its class, so we walk all
    candidates in global score order and stop as soon as 100 have survived, instead of building
    the reference's [80, 200, 200] IoU tensor (same result).

    Exactly equal scores go as ONNX's TopK orders them in the detect layout's graph (lower index
    first): within a class the lower prior, across classes the lower class; so where tied
    candidates suppress one another, or straddle the 100th place, the same ones are kept, and
    they come out in the graph's order. (Not by box: the host's exp and the graph's differ in
    the last bit, which would reorder tied boxes that nearly coincide.)
    """
    n, num_classes = scores.shape
    k = min(cfg.top_k, n)
    class_scores, class_priors = best_per_class(scores, k)  # [80, k]
    # class-major, so the stable sort leaves tied candidates by class, then by rank
    order = np.argsort(-class_scores.reshape(-1), kind="stable")
    flat_scores = class_scores.reshape(-1)[order]
    classes_all = order // k
    priors_all = class_priors.reshape(-1)[order]
    m = min(order.size, 4 * cfg.max_num_detections)
    while m <= FAST_NMS_WINDOW:
        classes, priors = classes_all[:m], priors_all[:m]
        cand = boxes[priors]
        iou = jaccard(cand[None], cand[None])[0]
        earlier_same_class = np.triu(classes[:, None] == classes[None, :], k=1)
        iou = np.where(earlier_same_class, iou, np.float32(0))
        keep = iou.max(axis=0) <= cfg.nms_thresh
        if int(keep.sum()) >= cfg.max_num_detections or m == order.size:
            break
        m = min(order.size, 4 * m)
    else:  # few survivors among many candidates: the reference's per-class computation
        cls_boxes = boxes[class_priors.reshape(-1)].reshape(num_classes, k, 4)
        per_class = np.triu(jaccard(cls_boxes, cls_boxes), k=1).max(axis=1)  # [80, k]
        keep = (per_class <= cfg.nms_thresh).reshape(-1)[order]
        classes, priors = classes_all, priors_all
    chosen = np.flatnonzero(keep)[: cfg.max_num_detections]
    picked = priors[chosen]
    return Detections(boxes[picked], coefs[picked], classes[chosen], flat_scores[chosen])


def greedy_nms(boxes: np.ndarray, scores: np.ndarray, threshold: float) -> np.ndarray:
    """Indices (ascending) kept by classic greedy NMS in float32 with +1 areas, as the reference's
    Cython `cnms`: a box is suppressed by a kept, higher-scored one when IoU >= threshold."""
    x1, y1, x2, y2 = (boxes[:, i] for i in range(4))
    areas = (x2 - x1 + np.float32(1)) * (y2 - y1 + np.float32(1))
    order = scores.argsort()[::-1]
    suppressed = np.zeros(len(scores), dtype=bool)
    one, zero = np.float32(1), np.float32(0)
    for pos, i in enumerate(order):
        if suppressed[i]:
            continue
        rest = order[pos + 1:]
        rest = rest[~suppressed[rest]]
        if rest.size == 0:
            break
        w = np.maximum(zero, np.minimum(x2[i], x2[rest]) - np.maximum(x1[i], x1[rest]) + one)
        h = np.maximum(zero, np.minimum(y2[i], y2[rest]) - np.maximum(y1[i], y1[rest]) + one)
        inter = w * h
        overlap = inter / (areas[i] + areas[rest] - inter)
        suppressed[rest[overlap >= np.float32(threshold)]] = True
    return np.flatnonzero(~suppressed)


def traditional_nms(boxes: np.ndarray, coefs: np.ndarray, scores: np.ndarray, cfg: ModelConfig) -> Detections:
    """Per-class greedy NMS over candidates whose class score passes conf_thresh, at pixel scale."""
    pixel_boxes = boxes * cfg.max_size
    by_class = scores.T
    kept_idx, kept_cls, kept_scores = [], [], []
    for cls in range(by_class.shape[0]):
        candidates = np.flatnonzero(by_class[cls] > cfg.conf_thresh)
        if candidates.size == 0:
            continue
        keep = candidates[greedy_nms(pixel_boxes[candidates], by_class[cls, candidates], cfg.nms_thresh)]
        kept_idx.append(keep)
        kept_cls.append(np.full(keep.size, cls, dtype=np.int64))
        kept_scores.append(by_class[cls, keep])
    if not kept_idx:
        return Detections(np.zeros((0, 4), np.float32), coefs[:0], np.zeros(0, np.int64), np.zeros(0, np.float32))
    idx = np.concatenate(kept_idx)
    classes = np.concatenate(kept_cls)
    all_scores = np.concatenate(kept_scores)
    order = np.argsort(-all_scores, kind="stable")[: cfg.max_num_detections]
    idx = idx[order]
    return Detections(pixel_boxes[idx] / cfg.max_size, coefs[idx], classes[order], all_scores[order])


def detect_image(loc, conf, coefs, priors, cfg: ModelConfig, nms: str = "fast") -> Detections | None:
    """Detect for one image: loc [P,4], conf [P,81] (softmaxed), coefs [P,32], priors [P,4]
    (float32 arrays, or anything numpy reads as one).

    Returns None when no prior's best foreground score passes conf_thresh (as the reference)."""
    loc, conf, coefs, priors = (np.asarray(a, np.float32) for a in (loc, conf, coefs, priors))
    decoded = decode(loc, priors)
    foreground = conf[:, 1:]
    best = foreground.max(axis=1)
    if np.isnan(best).any():  # a broken model or run: say so rather than drop those priors
        raise InputError("the model's class scores hold NaN",
                         hint="check the model and its outputs (yedge compare MODEL CHECKPOINT)")
    keep = best > cfg.conf_thresh
    scores = foreground[keep]  # [kept priors, 80]
    if scores.shape[0] == 0:
        return None
    method = fast_nms if nms == "fast" else traditional_nms
    return method(decoded[keep], coefs[keep], scores, cfg)


def device_detections(boxes, scores, classes, coefs, count) -> Detections | None:
    """One image's DeviceDetect outputs (no batch dimension) → Detections, or None when there was
    no candidate (as `detect_image`)."""
    n = int(count)
    if n == 0:
        return None
    boxes, scores, classes, coefs = (np.asarray(a, np.float32) for a in (boxes, scores, classes, coefs))
    return Detections(boxes[:n], coefs[:n], classes[:n].round().astype(np.int64), scores[:n])
