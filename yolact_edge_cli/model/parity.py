"""Does an exported graph compute what PyTorch computes? (docs/model.md, "the export check")

Network tensors are compared value by value, within a tolerance relative to their scale.
Detections (the detect layout) cannot be: a score that differs in the 7th digit at an exact tie,
at the 0.05 threshold or at a top-k cut changes which candidate fills a slot, and every slot after
it moves. So the network's tensors are compared value by value, and the detections as sets: a
detection matches one of the same class whose box overlaps it (IoU ≥ 0.5) and whose score is
within the tolerance; what is left unmatched must be a marginal candidate — within MARGIN of the
threshold, of the other side's last score when its slots are all full, or of another candidate of
its class (a tie: which of the two survives NMS or a top-k cut is then up to the last bit).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..choices import Layout
from .config import ModelConfig
from .detect import jaccard

# Outputs may differ by this much times max(1, |largest reference value|).
TENSOR_TOLERANCE = 1e-4
# Two matched detections' scores differ by at most this much.
SCORE_TOLERANCE = 1e-4
# A candidate this close to the threshold, a cut or a tie may be kept on one side only.
MARGIN = 1e-5
MATCH_IOU = 0.5


@dataclass
class Parity:
    """What differs between PyTorch's outputs and the graph's: per tensor the max |Δ| (detections:
    over matched ones), and a line for each difference beyond tolerance."""

    max_abs_diff: dict[str, float] = field(default_factory=dict)
    matched: int = 0
    marginal: int = 0
    problems: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def compare_tensors(parity: Parity, name: str, want: np.ndarray, got: np.ndarray) -> None:
    if want.shape != got.shape:
        parity.problems.append(f"{name} has shape {list(got.shape)}, PyTorch {list(want.shape)}")
        return
    diff = float(np.abs(got.astype(np.float64) - want).max()) if want.size else 0.0
    parity.max_abs_diff[name] = max(parity.max_abs_diff.get(name, 0.0), diff)
    scale = max(1.0, float(np.abs(want).max())) if want.size else 1.0
    if not diff <= TENSOR_TOLERANCE * scale:  # NaN fails too
        parity.problems.append(f"{name} max|Δ|={diff:.2e} (tolerance {TENSOR_TOLERANCE * scale:.0e})")


@dataclass
class _Side:
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    coefficients: np.ndarray

    @classmethod
    def of(cls, boxes, scores, classes, coefficients, count) -> _Side:
        n = int(round(float(count)))
        return cls(np.asarray(boxes[:n], np.float64), np.asarray(scores[:n], np.float64),
                   np.asarray(classes[:n]).round().astype(int), np.asarray(coefficients[:n], np.float64))

    def describe(self, i: int) -> str:
        box = ", ".join(f"{v:.3f}" for v in self.boxes[i])
        return f"class {self.classes[i]} score {self.scores[i]:.6f} box [{box}]"


def compare_detections(parity: Parity, want: tuple, got: tuple, cfg: ModelConfig, conf: np.ndarray,
                       sample: int = 0) -> None:
    """`want`/`got`: one sample's (boxes [n,4], scores [n], classes [n], coefficients [n,32],
    count) of PyTorch and of the graph; `conf`: PyTorch's class scores [P, classes] (background
    first). Matched detections whose boxes agree within the tolerance are the same prior: their
    coefficients are compared too."""
    torch_side, graph_side = _Side.of(*want), _Side.of(*got)
    with np.errstate(divide="ignore", invalid="ignore"):  # an empty box overlaps nothing
        iou = jaccard(torch_side.boxes[None], graph_side.boxes[None])[0]
    pair_ok = ((torch_side.classes[:, None] == graph_side.classes[None, :])
               & (np.abs(torch_side.scores[:, None] - graph_side.scores[None, :]) <= SCORE_TOLERANCE)
               & (iou >= MATCH_IOU))
    taken = np.zeros(len(graph_side.scores), bool)
    unmatched_torch: list[int] = []
    score_diffs = [0.0]
    for i in range(len(torch_side.scores)):  # best first: each takes its best free partner
        free = np.flatnonzero(pair_ok[i] & ~taken)
        if free.size == 0:
            unmatched_torch.append(i)
            continue
        j = free[np.argmax(iou[i, free])]
        taken[j] = True
        score_diffs.append(abs(torch_side.scores[i] - graph_side.scores[j]))
        box_diff = float(np.abs(torch_side.boxes[i] - graph_side.boxes[j]).max())
        if box_diff <= TENSOR_TOLERANCE:
            for name, diff in (("boxes", box_diff), ("coefficients", float(
                    np.abs(torch_side.coefficients[i] - graph_side.coefficients[j]).max()))):
                parity.max_abs_diff[name] = max(parity.max_abs_diff.get(name, 0.0), diff)
                if not diff <= TENSOR_TOLERANCE:
                    parity.problems.append(f"image {sample}: {name} of {torch_side.describe(i)} "
                                           f"differ by {diff:.2e} (tolerance {TENSOR_TOLERANCE:.0e})")
    unmatched_graph = [int(j) for j in np.flatnonzero(~taken)]
    parity.matched += int(taken.sum())
    parity.max_abs_diff["scores"] = max(parity.max_abs_diff.get("scores", 0.0), max(score_diffs))
    sides = ((torch_side, "PyTorch", unmatched_torch, graph_side),
             (graph_side, "the graph", unmatched_graph, torch_side))
    for side, name, unmatched, other in sides:
        other_full = len(other.scores) >= cfg.max_num_detections
        other_last = other.scores.min() if len(other.scores) else np.inf
        for i in unmatched:
            score, near = side.scores[i], np.abs(conf[:, side.classes[i] + 1] - side.scores[i]) <= MARGIN
            if (score <= cfg.conf_thresh + MARGIN or (other_full and score <= other_last + MARGIN)
                    or int(near.sum()) >= 2):
                parity.marginal += 1
                continue
            other_name = "the graph" if name == "PyTorch" else "PyTorch"
            parity.problems.append(f"image {sample}: {name}'s detection {side.describe(i)} "
                                   f"has no match in {other_name}'s")

def compare_outputs(layout: str, names: list[str], want: list[np.ndarray], got: list[np.ndarray],
                    cfg: ModelConfig, parity: Parity | None = None) -> Parity:
    """PyTorch's outputs of a batch against the graph's, as the layout allows, added to `parity`."""
    parity = Parity() if parity is None else parity
    outputs = dict(zip(names, zip(want, got)))
    if layout != Layout.DETECT.value:
        for name, (w, g) in outputs.items():
            compare_tensors(parity, name, w, g)
        return parity
    fields = ("boxes", "scores", "classes", "coefficients", "count")
    for name, (w, g) in outputs.items():
        if name not in fields:  # proto, and the network's loc, conf and mask
            compare_tensors(parity, name, w, g)
    for sample in range(want[0].shape[0]):
        compare_detections(parity, tuple(outputs[f][0][sample] for f in fields),
                           tuple(outputs[f][1][sample] for f in fields), cfg, outputs["conf"][0][sample], sample)
    return parity
