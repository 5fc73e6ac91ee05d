"""Detect inside the exported graph (the detect layout, docs/model.md): the host's fast NMS
(model/detect.py) with fixed shapes for a whole batch, in PyTorch, so it exports to ONNX."""
from __future__ import annotations

import torch
from torch import nn

from .config import ModelConfig
from .detect import NOT_A_CANDIDATE, decode, jaccard


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
