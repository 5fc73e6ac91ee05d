"""`yedge show`: each detection's mask (translucent, one colour per instance), box, class name
and score drawn on the original image, ground truth beside it with --gt, and a contact sheet."""
from __future__ import annotations

import contextlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..draw import decode_rle, draw
from ..errors import InputError, UsageError
from ..model.config import COCO, CONFIGS, SHOW_SCORE_THRESHOLD
from ..provenance import check_current_model, check_same_inputs
from ..records import EvalRecord, PrepRecord, ShowRecord
from ..workspace import CONTACT_SHEET, Workspace, atomic_path

THUMB_WIDTH = 320


@dataclass
class ShowResult:
    pictures: list[str] = field(default_factory=list)
    contact_sheet: str = ""
    detections_drawn: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _write_png(path: Path, image: np.ndarray) -> None:
    import cv2

    ok, data = cv2.imencode(".png", image)
    with atomic_path(path) as tmp:
        tmp.write_bytes(data.tobytes())


@dataclass(frozen=True)
class ShowOptions:
    """Which evaluated images `yedge show` draws, and how, with each default (the CLI reads them
    here)."""

    images: int = 8                        # the first N evaluated images ...
    ids: tuple[int, ...] | None = None     # ... or these COCO image ids
    score_threshold: float = SHOW_SCORE_THRESHOLD
    gt: bool = False                       # the ground truth beside each picture
    out: Path | None = None                # None: results/vis


def run(ws: Workspace, options: ShowOptions = ShowOptions()) -> ShowResult:
    images, ids, score_threshold, gt, out = (
        options.images, options.ids, options.score_threshold, options.gt, options.out)
    import cv2

    from ..data.coco import load_coco
    from ..data.preprocess import read_image

    if images < 1:
        raise UsageError(f"--num-images must be at least 1, got {images}", hint="e.g. --num-images 8")
    evaluated_run = ws.need(EvalRecord, "evaluation results", "yedge eval")
    if evaluated_run.streamed_images:  # read straight from its images: no prepared inputs to match
        folder = Path(evaluated_run.streamed_images)
    else:
        folder = Path(ws.need(PrepRecord, "prepared inputs", "yedge prep").images)
        check_same_inputs("the last evaluation", evaluated_run.inputs_fingerprint, ws,
                          fix="rerun `yedge infer` and `yedge eval` on the current inputs")
    check_current_model("the last evaluation", evaluated_run.model_weights_sha256,
                        evaluated_run.model_weights, ws,
                        fix="rerun `yedge infer --overwrite` and `yedge eval` for the current model")
    coco = load_coco(evaluated_run.annotations)
    labels = CONFIGS[evaluated_run.config].labels if evaluated_run.config in CONFIGS else COCO
    class_names = dict(zip(labels.category_ids, labels.names))
    detections = json.loads(ws.resolve(evaluated_run.segm).read_text())
    boxes = json.loads(ws.resolve(evaluated_run.bbox).read_text())
    evaluated = _evaluated_ids(ws, evaluated_run)
    chosen = list(ids) if ids else evaluated[:images]
    unknown = [i for i in chosen if i not in evaluated]
    if unknown:
        raise InputError(f"image id(s) {', '.join(map(str, unknown))} were not evaluated",
                         path=ws.resolve(evaluated_run.metrics),
                         hint="pass ids the last `yedge eval` evaluated (its metrics.json lists them)")
    out = Path(out) if out else ws.vis_dir
    result = ShowResult()
    thumbs = []
    for image_id in chosen:
        info = coco.imgs[image_id]
        image = read_image(folder / info["file_name"])
        if image.shape[:2] != (info["height"], info["width"]):
            # results are at the annotated size (prep warned); draw them on the image at that size
            image = cv2.resize(image, (info["width"], info["height"]))
        mine = [(m, b) for m, b in zip(detections, boxes)
                if m["image_id"] == image_id and m["score"] > score_threshold]
        instances = [{"mask": decode_rle(m["segmentation"]),
                      "bbox": b["bbox"], "label": f"{class_names[m['category_id']]} {m['score']:.2f}"}
                     for m, b in mine]
        picture = draw(image, instances)
        result.detections_drawn += len(instances)
        if gt:
            anns = coco.loadAnns(coco.getAnnIds(imgIds=image_id))
            truth = [{"mask": decode_rle(coco.annToRLE(a)), "bbox": a["bbox"],
                      "label": class_names.get(a["category_id"], str(a["category_id"])) +
                      (" (crowd)" if a.get("iscrowd") else "")} for a in anns]
            picture = np.concatenate([picture, np.full((picture.shape[0], 8, 3), 255, np.uint8),
                                      draw(image, truth)], axis=1)
        path = out / f"{image_id}.png"
        _write_png(path, picture)
        result.pictures.append(str(path))
        scale = THUMB_WIDTH / picture.shape[1]
        thumbs.append(cv2.resize(picture, (THUMB_WIDTH, max(1, int(picture.shape[0] * scale)))))
    if thumbs:
        columns = min(4, len(thumbs))
        height = max(t.shape[0] for t in thumbs)
        cells = [np.pad(t, ((0, height - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in thumbs]
        cells += [np.full_like(cells[0], 255)] * (-len(cells) % columns)
        rows = [np.concatenate(cells[i:i + columns], axis=1) for i in range(0, len(cells), columns)]
        sheet = out / CONTACT_SHEET
        _write_png(sheet, np.concatenate(rows, axis=0))
        result.contact_sheet = str(sheet)
    ws.save(ShowRecord(results=evaluated_run.segm, ids=chosen, score_threshold=score_threshold, gt=gt,
                       folder=ws.relative(out)))
    return result


def _evaluated_ids(ws: Workspace, evaluated_run: EvalRecord) -> list[int]:
    """The image ids the last eval evaluated (its metrics.json), in order; prepared ids for a
    workspace evaluated by an older yedge."""
    with contextlib.suppress(OSError, ValueError, KeyError):
        return json.loads(ws.resolve(evaluated_run.metrics).read_text())["provenance"]["image_ids"]
    return ws.read_ids()
