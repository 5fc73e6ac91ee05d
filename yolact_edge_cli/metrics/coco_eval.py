"""COCO's own box and mask mAP with pycocotools (or faster-coco-eval when asked and present)."""
from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

from ..errors import EnvironmentProblem

STAT_NAMES = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large",
              "AR1", "AR10", "AR100", "AR_small", "AR_medium", "AR_large")
IOU_TYPES = {"bbox": "box", "segm": "mask"}


def _classes(fast: bool):
    if not fast:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval

        return COCO, COCOeval
    try:
        from faster_coco_eval import COCO, COCOeval_faster
    except ImportError:
        raise EnvironmentProblem("faster-coco-eval is not installed",
                                 hint="pip install faster-coco-eval, or drop --fast-eval") from None
    return COCO, COCOeval_faster


def evaluate(annotations: Path, results: dict[str, Path], image_ids: list[int],
             fast: bool = False) -> dict[str, dict]:
    """{'bbox'|'segm': {'stats': [12 numbers], 'summary': pycocotools' printed lines}}."""
    coco_cls, eval_cls = _classes(fast)
    out = {}
    with contextlib.redirect_stdout(io.StringIO()):
        gt = coco_cls(str(annotations))
    for iou_type, path in results.items():
        entries = json.loads(Path(path).read_text())
        if not entries:
            out[iou_type] = {"stats": [-1.0] * 12, "summary": "no detections"}
            continue
        printed = io.StringIO()
        with contextlib.redirect_stdout(printed):
            dt = gt.loadRes(str(path))
            evaluator = eval_cls(gt, dt, iou_type)
            evaluator.params.imgIds = list(image_ids)
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        lines = [line for line in printed.getvalue().splitlines() if "Average" in line]
        out[iou_type] = {"stats": [float(s) for s in evaluator.stats[:12]], "summary": "\n".join(lines)}
    return out
