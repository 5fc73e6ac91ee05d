"""How far a reduced-precision model is from float32 on the same inputs (docs/quantization.md):
each output's worst cosine and largest |Δ|; the share of float32's confident detections the
other model finds again (same class, box IoU ≥ 0.5); and, where the images are annotated, the
YOLACT mAP of each. `yedge quantize` and `yedge bench --precisions` both report these."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..model.config import SHOW_SCORE_THRESHOLD
from .matching import match_detections
from .yolact_ap import APAccumulator, ground_truth, match_image

# float32's detections at least this confident are the ones the other model is expected to find
CONFIDENT = SHOW_SCORE_THRESHOLD


@dataclass
class AgreementSummary:
    # per output: the worst cosine and the largest |Δ| against float32 over the images
    outputs: dict[str, dict[str, float]] = field(default_factory=dict)
    float32_confident: int = 0
    matched: int = 0
    # box mAP ("all", points) of float32 and of the other model; None without annotations
    map_float32: float | None = None
    map_other: float | None = None

    @property
    def worst_cosine(self) -> float:
        return min(o["cosine"] for o in self.outputs.values())

    @property
    def matched_share(self) -> float | None:
        return round(self.matched / self.float32_confident, 4) if self.float32_confident else None

    @property
    def map_drop(self) -> float | None:
        if self.map_float32 is None or self.map_other is None:
            return None
        return round(self.map_float32 - self.map_other, 3)

    def detections(self) -> dict:
        """What the detections say, apart from the outputs' figures."""
        return {"float32_confident": self.float32_confident, "matched": self.matched,
                "matched_share": self.matched_share, "map_float32": self.map_float32,
                "map_other": self.map_other, "map_drop": self.map_drop}

    def to_dict(self) -> dict:
        return {"outputs": self.outputs, "worst_cosine": self.worst_cosine, **self.detections()}


class Agreement:
    """Fed one image's outputs from both models at a time (`add`), summarised at the end."""

    def __init__(self, pipeline, names: tuple[str, ...] | list[str], coco=None):
        self.pipeline, self.names, self.coco = pipeline, list(names), coco
        self.summary = AgreementSummary()
        self._maps = (APAccumulator(), APAccumulator()) if coco is not None else None

    def add(self, want: list[np.ndarray], got: list[np.ndarray], width: int, height: int,
            image_id: int | None = None) -> None:
        for name, w, g in zip(self.names, want, got):
            x, y = w.ravel().astype(np.float64), g.ravel().astype(np.float64)
            norm = np.linalg.norm(x) * np.linalg.norm(y)
            cosine = float(x @ y / norm) if norm else float(np.array_equal(x, y))
            seen = self.summary.outputs.setdefault(name, {"cosine": 1.0, "max_abs_diff": 0.0})
            seen["cosine"] = min(seen["cosine"], cosine)
            seen["max_abs_diff"] = max(seen["max_abs_diff"], float(np.abs(x - y).max()))
        results = [self.pipeline(outputs, width, height) for outputs in (want, got)]
        confident = results[0].subset(np.flatnonzero(results[0].scores >= CONFIDENT))
        self.summary.float32_confident += len(confident)
        self.summary.matched += match_detections(confident, results[1])[0]
        if self._maps is not None and image_id is not None:
            truth = ground_truth(self.coco, image_id, width, height, self.pipeline.cfg.labels)
            for accumulator, result in zip(self._maps, results):
                rles = self.pipeline.to_coco(image_id, result)[2]
                accumulator.add(match_image(result, rles, truth))

    def finish(self) -> AgreementSummary:
        if self._maps is not None:
            self.summary.map_float32, self.summary.map_other = (
                round(accumulator.table()["box"]["all"], 3) for accumulator in self._maps)
        return self.summary
