"""Box decoding and Detect: confidence filtering, then fast NMS (the Ascend recipe's choice) or
traditional greedy NMS (yolact_edge's own default), capped at 100 detections per image.

The arithmetic follows docs/model.md §4 and §6 operation by operation, quirks
included, so detections match the reference's bit for bit where the float ops allow.
`DeviceDetect` is the same fast NMS with fixed shapes, the end of the detect layout's graph.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..choices import Nms
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

    boxes: torch.Tensor
    coefs: torch.Tensor
    classes: torch.Tensor
    scores: torch.Tensor

    def __len__(self) -> int:
        return int(self.scores.shape[0])


def decode(loc: torch.Tensor, priors: torch.Tensor) -> torch.Tensor:
    """(cx, cy, w, h) priors + offsets [..., P, 4] → x1y1x2y2, with x2 computed as x1 + w like
    the reference."""
    centers = priors[:, :2] + loc[..., :2] * VARIANCES[0] * priors[:, 2:]
    sizes = priors[:, 2:] * torch.exp(loc[..., 2:] * VARIANCES[1])
    top_left = centers - sizes / 2
    return torch.cat([top_left, top_left + sizes], dim=-1)


def jaccard(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Batched IoU [n, A, B] of x1y1x2y2 boxes, no +1 on widths."""
    max_xy = torch.min(a[:, :, None, 2:], b[:, None, :, 2:])
    min_xy = torch.max(a[:, :, None, :2], b[:, None, :, :2])
    wh = torch.clamp(max_xy - min_xy, min=0)
    inter = wh[..., 0] * wh[..., 1]
    area_a = ((a[:, :, 2] - a[:, :, 0]) * (a[:, :, 3] - a[:, :, 1]))[:, :, None]
    area_b = ((b[:, :, 2] - b[:, :, 0]) * (b[:, :, 3] - b[:, :, 1]))[:, None, :]
    return inter / (area_a + area_b - inter)


def fast_nms(boxes, coefs, scores, cfg: ModelConfig) -> Detections:
    """Per-class fast NMS over scores [n, 80]: a class's candidates are its top_k priors; one is
    dropped when a higher-scored candidate of its class overlaps it by more than the threshold,
    suppressed or not; the 100 best survivors are kept.

    A candidate's fate depends only on higher-scored candidates of its class, so we walk all
    candidates in global score order and stop as soon as 100 have survived, instead of building
    the reference's [80, 200, 200] IoU tensor (same result).

    Exactly equal scores go as ONNX's TopK orders them in the detect layout's graph (lower index
    first): within a class the lower prior, across classes the lower class; so where tied
    candidates suppress one another, or straddle the 100th place, the same ones are kept.
    """
    n, num_classes = scores.shape
    k = min(cfg.top_k, n)
    class_scores, class_idx = scores.topk(k, dim=0)  # [k, 80], best first
    by_prior = torch.from_numpy(np.lexsort((class_idx.numpy(), -class_scores.numpy()), axis=0))
    class_scores, class_idx = class_scores.gather(0, by_prior), class_idx.gather(0, by_prior)
    # class-major, so the stable sort leaves tied candidates by class, then by rank
    flat_scores, order = class_scores.t().reshape(-1).sort(descending=True, stable=True)
    classes_all = torch.div(order, k, rounding_mode="floor")
    priors_all = class_idx.t().reshape(-1)[order]
    m = min(order.numel(), 4 * cfg.max_num_detections)
    while m <= FAST_NMS_WINDOW:
        classes, priors = classes_all[:m], priors_all[:m]
        cand = boxes[priors]
        iou = jaccard(cand[None], cand[None])[0]
        earlier_same_class = (classes[:, None] == classes[None, :]).triu_(diagonal=1)
        iou = torch.where(earlier_same_class, iou, torch.zeros(()))
        keep = iou.max(dim=0).values <= cfg.nms_thresh
        if int(keep.sum()) >= cfg.max_num_detections or m == order.numel():
            break
        m = min(order.numel(), 4 * m)
    else:  # few survivors among many candidates: the reference's per-class computation
        cls_boxes = boxes[class_idx.t().reshape(-1)].view(num_classes, k, 4)
        per_class = jaccard(cls_boxes, cls_boxes).triu_(diagonal=1).max(dim=1).values  # [80, k]
        keep = (per_class <= cfg.nms_thresh).reshape(-1)[order]
        classes, priors = classes_all, priors_all
    chosen = keep.nonzero().squeeze(1)[: cfg.max_num_detections]
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


def traditional_nms(boxes, coefs, scores, cfg: ModelConfig) -> Detections:
    """Per-class greedy NMS over candidates whose class score passes conf_thresh, at pixel scale."""
    pixel_boxes = (boxes * cfg.max_size).numpy()
    scores_np = scores.numpy().T
    kept_idx, kept_cls, kept_scores = [], [], []
    for cls in range(scores_np.shape[0]):
        candidates = np.flatnonzero(scores_np[cls] > cfg.conf_thresh)
        if candidates.size == 0:
            continue
        keep = candidates[greedy_nms(pixel_boxes[candidates], scores_np[cls, candidates],
                                     cfg.nms_thresh)]
        kept_idx.append(keep)
        kept_cls.append(np.full(keep.size, cls, dtype=np.int64))
        kept_scores.append(scores_np[cls, keep])
    if not kept_idx:
        empty = torch.zeros(0)
        return Detections(empty.view(0, 4), coefs[:0], empty.long(), empty)
    idx = torch.from_numpy(np.concatenate(kept_idx))
    classes = torch.from_numpy(np.concatenate(kept_cls))
    all_scores = torch.from_numpy(np.concatenate(kept_scores))
    all_scores, order = all_scores.sort(0, descending=True)
    order = order[: cfg.max_num_detections]
    idx = idx[order]
    box_out = torch.from_numpy(pixel_boxes)[idx] / cfg.max_size
    return Detections(box_out, coefs[idx], classes[order], all_scores[: cfg.max_num_detections])


def detect_image(loc, conf, coefs, priors, cfg: ModelConfig, nms: str = "fast") -> Detections | None:
    """Detect for one image: loc [P,4], conf [P,81] (softmaxed), coefs [P,32], priors [P,4].

    Returns None when no prior's best foreground score passes conf_thresh (as the reference)."""
    decoded = decode(loc, priors)
    foreground = conf[:, 1:]
    keep = foreground.amax(dim=1) > cfg.conf_thresh
    scores = foreground[keep]  # [kept priors, 80]
    if scores.shape[0] == 0:
        return None
    method = fast_nms if nms == "fast" else traditional_nms
    return tie_order(method(decoded[keep], coefs[keep], scores, cfg))


def tie_order(dets: Detections) -> Detections:
    """Best first, detections of exactly equal score by class, then by box (x1, y1, x2, y2).

    Sorts and TopK order equal values as they please (the reference's CPU sort, our host sort,
    the device's TopK each differently); this order is the same on every path, so the detect
    layout writes the same files as the fpn and head layouts even where scores tie."""
    if len(dets) < 2:
        return dets
    keys = [dets.boxes[:, 3], dets.boxes[:, 2], dets.boxes[:, 1], dets.boxes[:, 0], dets.classes, -dets.scores]
    order = torch.from_numpy(np.lexsort([key.numpy() for key in keys]))
    return Detections(dets.boxes[order], dets.coefs[order], dets.classes[order], dets.scores[order])


def _top_k(values: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest along the last dimension, exactly equal ones by lower index first (ONNX
    TopK's rule): TopK in an exported graph; in eager PyTorch, whose topk orders ties as it
    pleases, a stable sort."""
    if torch.onnx.is_in_onnx_export():
        return values.topk(k, dim=-1)
    ordered, indices = values.sort(dim=-1, descending=True, stable=True)
    return ordered[..., :k], indices[..., :k]


class DeviceDetect(nn.Module):
    """Detect of a whole batch with fixed shapes, so it runs inside an exported graph (the detect
    layout, docs/model.md): the reference's fast NMS written with opset-11 operators that atc
    converts (docs/atc-onnx-operators.md): TopK, Gather, comparisons, Where, ReduceMax; no
    NonMaxSuppression and no loops.

    A prior that is no candidate (best foreground score ≤ conf_thresh) gets the score -1 in every
    class: it sorts after all candidates, so it can suppress none of them, and it is never output.
    Slots past `count` are zero. Every output is float32, classes and count included."""

    def __init__(self, cfg: ModelConfig, priors: torch.Tensor):
        super().__init__()
        self.cfg = cfg
        k = min(cfg.top_k, int(priors.shape[0]))
        self.register_buffer("priors", priors, persistent=False)
        # earlier[i, j] = 1 when candidate i is scored above candidate j (the reference's triu)
        self.register_buffer("earlier", torch.ones(k, k).triu(diagonal=1), persistent=False)

    priors: torch.Tensor
    earlier: torch.Tensor

    def forward(self, loc: torch.Tensor, conf: torch.Tensor, coef: torch.Tensor):
        """loc [B,P,4], conf [B,P,81] (softmax), coef [B,P,32] → boxes [B,n,4], scores [B,n],
        classes [B,n], coefficients [B,n,32], count [B] with n = max_num_detections."""
        cfg = self.cfg
        batch, num_priors = loc.shape[0], loc.shape[1]
        k = self.earlier.shape[0]
        boxes = decode(loc, self.priors)
        foreground = conf[:, :, 1:]
        num_classes = foreground.shape[2]
        candidate = foreground.amax(dim=2, keepdim=True) > cfg.conf_thresh
        scores = torch.where(candidate, foreground, torch.full_like(foreground, NOT_A_CANDIDATE))
        class_scores, class_priors = _top_k(scores.transpose(1, 2), k)  # [B, 80, k], best first
        first_row = (torch.arange(batch) * num_priors).view(batch, 1)
        rows = (class_priors.reshape(batch, num_classes * k) + first_row).reshape(-1)
        cand = boxes.reshape(-1, 4).index_select(0, rows).view(batch * num_classes, k, 4)
        overlap = (jaccard(cand, cand) * self.earlier).amax(dim=1).view(batch, num_classes, k)
        keep = (overlap <= cfg.nms_thresh) & (class_scores > NOT_A_CANDIDATE)
        survivors = torch.where(keep, class_scores, torch.full_like(class_scores, NOT_A_CANDIDATE))
        top_scores, top = _top_k(survivors.reshape(batch, num_classes * k), cfg.max_num_detections)
        found = (top_scores > NOT_A_CANDIDATE).to(loc.dtype)
        chosen = (class_priors.reshape(batch, num_classes * k).gather(1, top) + first_row).reshape(-1)
        picked_boxes = boxes.reshape(-1, 4).index_select(0, chosen).view(batch, -1, 4)
        picked_coefs = coef.reshape(-1, coef.shape[2]).index_select(0, chosen).view(batch, -1, coef.shape[2])
        classes = torch.div(top, k, rounding_mode="floor").to(loc.dtype)
        return (picked_boxes * found[:, :, None], top_scores * found, classes * found,
                picked_coefs * found[:, :, None], found.sum(dim=1))


def device_detections(boxes, scores, classes, coefs, count) -> Detections | None:
    """One image's DeviceDetect outputs (no batch dimension) → Detections, or None when there was
    no candidate (as `detect_image`)."""
    n = int(count)
    if n == 0:
        return None
    return tie_order(Detections(boxes[:n], coefs[:n], classes[:n].round().long(), scores[:n]))
