"""COCO's own box and mask mAP with pycocotools (or faster-coco-eval when asked and present)."""
from __future__ import annotations

import contextlib
import copy
import io
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import EnvironmentProblem
from .curves import AREA_ALL, Curves

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
             fast: bool = False, curves: dict[str, Curves] | None = None) -> dict[str, dict]:
    """{'bbox'|'segm': {'stats': [12 numbers], 'summary': pycocotools' printed lines}}; each
    IoU type's `Curves` into `curves` when given (none for a type without detections)."""
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
        if curves is not None:
            curves[iou_type] = Curves.read(evaluator, iou_type)
    return out


class ImageByImage:
    """pycocotools' COCOeval fed one image at a time (streaming eval), so that no result entry
    stays in memory: each image's detections are matched as they come by COCOeval's own
    `evaluate()` on that image alone, and only what `accumulate()` reads is kept (the scores, the
    matched and ignored flags, the number of ground truths that count); at the end
    `accumulate()` and `summarize()` run once over every image, in the order a COCOeval over all
    the results uses. The stats are that COCOeval's (tested against it)."""

    def __init__(self, gt):
        """`gt`: the annotations' COCO object the caller already loaded (`data.coco.load_coco`)."""
        self.gt = gt
        self._kept: dict[str, dict[tuple[int, int, int], tuple]] = {t: {} for t in IOU_TYPES}
        self._detections = dict.fromkeys(IOU_TYPES, 0)
        self._image_ids: list[int] = []

    def add(self, image_id: int, entries: dict[str, list[dict]]) -> None:
        """One image's COCO result entries by IoU type (as written to the result files)."""
        from pycocotools.cocoeval import COCOeval

        self._image_ids.append(image_id)
        for iou_type, found in entries.items():
            self._detections[iou_type] += len(found)
            evaluator = COCOeval(self.gt, self._results(image_id, found, iou_type), iou_type)
            evaluator.params.imgIds = [image_id]
            with contextlib.redirect_stdout(io.StringIO()):
                evaluator.evaluate()
            areas = len(evaluator.params.areaRng)
            kept = self._kept[iou_type]
            for n, e in enumerate(evaluator.evalImgs):  # category-major, then area, one image
                if e is not None:
                    category, area = divmod(n, areas)
                    kept[image_id, category, area] = (
                        np.asarray(e["dtScores"], np.float64), e["dtMatches"] > 0, e["dtIgnore"].astype(bool),
                        int(np.count_nonzero(e["gtIgnore"] == 0)))

    def _results(self, image_id: int, found: list[dict], iou_type: str):
        """What `COCO.loadRes` makes of one image's entries (the same fields, without copying
        the whole image list), ids aside: no stat depends on them."""
        from pycocotools import mask as mask_utils
        from pycocotools.coco import COCO

        anns = []
        for number, entry in enumerate(found, 1):
            ann = dict(entry, id=number, iscrowd=0)
            if iou_type == "bbox":
                x, y, w, h = ann["bbox"]
                ann.setdefault("segmentation", [[x, y, x, y + h, x + w, y + h, x + w, y]])
                ann["area"] = w * h
            else:
                ann["area"] = mask_utils.area(ann["segmentation"])
                ann.setdefault("bbox", mask_utils.toBbox(ann["segmentation"]))
            anns.append(ann)
        results = COCO()
        results.dataset = {"images": self.gt.loadImgs([image_id]), "annotations": anns,
                           "categories": self.gt.dataset["categories"]}
        with contextlib.redirect_stdout(io.StringIO()):
            results.createIndex()
        return results

    def stats(self, curves: dict[str, Curves] | None = None) -> dict[str, dict]:
        """{'bbox'|'segm': {'stats': [12 numbers], 'summary': pycocotools' printed lines}}; each
        IoU type's `Curves` into `curves` when given, as `evaluate` gives them."""
        from pycocotools.cocoeval import COCOeval

        out = {}
        for iou_type, kept in self._kept.items():
            if not self._detections[iou_type]:
                out[iou_type] = {"stats": [-1.0] * 12, "summary": "no detections"}
                continue
            evaluator = COCOeval(self.gt, None, iou_type)
            params = evaluator.params
            params.imgIds = list(np.unique(self._image_ids))
            params.catIds = list(np.unique(params.catIds))
            params.maxDets = sorted(params.maxDets)
            evaluator._paramsEval = copy.deepcopy(params)
            evaluator.evalImgs = _EvalImgs(kept, len(params.catIds), len(params.areaRng), params.imgIds)
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                evaluator.accumulate()
                evaluator.summarize()
            lines = [line for line in printed.getvalue().splitlines() if "Average" in line]
            out[iou_type] = {"stats": [float(s) for s in evaluator.stats[:12]], "summary": "\n".join(lines)}
            if curves is not None:
                curves[iou_type] = Curves.read(evaluator, iou_type, matches=[
                    record[:3] for (_, _, area), record in kept.items() if area == AREA_ALL])
        return out


class _EvalImgs(Sequence):
    """COCOeval's `evalImgs` list (category-major, then area, then image) read from the kept
    records: `accumulate()` indexes it and reads these four fields."""

    def __init__(self, kept: dict, categories: int, areas: int, image_ids: list):
        self._kept, self._categories, self._areas, self._image_ids = kept, categories, areas, image_ids

    def __len__(self) -> int:
        return self._categories * self._areas * len(self._image_ids)

    def __getitem__(self, n):  # type: ignore[override]
        images = len(self._image_ids)
        category_area, image = divmod(n, images)
        category, area = divmod(category_area, self._areas)
        record = self._kept.get((int(self._image_ids[image]), category, area))
        if record is None:
            return None
        scores, matched, ignored, counted = record
        return {"dtScores": scores, "dtMatches": matched, "dtIgnore": ignored,
                "gtIgnore": np.zeros(counted, np.int64)}
