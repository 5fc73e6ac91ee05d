"""COCOeval image by image (streaming eval) gives the stats of one COCOeval over all results:
crowds, every area range, images without detections or without ground truth, score ties across
images, more than 100 detections in an image."""
import json

import numpy as np
from pycocotools import mask as mask_utils

from yolact_edge_cli.data.coco import load_coco
from yolact_edge_cli.metrics import coco_eval


def _coco_set(tmp_path, rng):
    images, annotations = [], []
    for image_id in range(1, 9):
        width, height = int(rng.integers(80, 300)), int(rng.integers(80, 300))
        images.append({"id": image_id, "file_name": f"{image_id}.png", "width": width, "height": height})
        for _ in range(0 if image_id == 8 else int(rng.integers(1, 12))):  # image 8: no ground truth
            x, y = float(rng.uniform(0, width - 20)), float(rng.uniform(0, height - 20))
            w, h = float(rng.uniform(2, width - x)), float(rng.uniform(2, height - y))
            annotations.append({"id": len(annotations) + 1, "image_id": image_id,
                                "category_id": int(rng.choice([1, 2, 3])), "bbox": [x, y, w, h],
                                "area": w * h, "iscrowd": int(rng.random() < 0.15),
                                "segmentation": [[x, y, x + w, y, x + w, y + h, x, y + h]]})
    categories = [{"id": i, "name": f"c{i}"} for i in (1, 2, 3)]
    path = tmp_path / "instances.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path, images, annotations


def _detections(images, truths, rng):
    """Per image: bbox and segm entries as eval writes them (RLE masks with text counts); about
    half near a ground truth (of its class or not), the rest anywhere."""
    per_image = {}
    for image in images:
        width, height = image["width"], image["height"]
        near = [t for t in truths if t["image_id"] == image["id"]]
        count = 0 if image["id"] == 5 else (130 if image["id"] == 3 else int(rng.integers(1, 15)))
        bbox, segm = [], []
        for _ in range(count):
            x1, y1 = int(rng.integers(0, width - 2)), int(rng.integers(0, height - 2))
            x2, y2 = int(rng.integers(x1 + 1, width)), int(rng.integers(y1 + 1, height))
            truth = near[int(rng.integers(len(near)))] if near and rng.random() < 0.5 else None
            if truth is not None:
                x, y, w, h = truth["bbox"]
                x1, y1 = int(x + rng.integers(0, 3)), int(y + rng.integers(0, 3))
                x2, y2 = max(x1 + 1, min(width, int(x + w))), max(y1 + 1, min(height, int(y + h)))
            mask = np.zeros((height, width), np.uint8, order="F")
            mask[y1:y2, x1:x2] = rng.random((y2 - y1, x2 - x1)) < 0.8
            rle = mask_utils.encode(mask)
            score = float(rng.choice([0.5, 0.25])) if rng.random() < 0.3 else float(rng.random())  # ties
            category = truth["category_id"] if truth is not None and rng.random() < 0.8 else int(rng.choice([1, 2, 3]))
            bbox.append({"image_id": image["id"], "category_id": category,
                         "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)], "score": score})
            segm.append({"image_id": image["id"], "category_id": category,
                         "segmentation": {"size": [height, width], "counts": rle["counts"].decode()},
                         "score": score})
        per_image[image["id"]] = {"bbox": bbox, "segm": segm}
    return per_image


def test_image_by_image_equals_one_cocoeval(tmp_path):
    rng = np.random.default_rng(0)
    annotations, images, truths = _coco_set(tmp_path, rng)
    per_image = _detections(images, truths, rng)
    order = [2, 1, 3, 5, 4, 8, 7, 6]  # the stream's order, not sorted
    files = {}
    for kind in ("bbox", "segm"):
        files[kind] = tmp_path / f"{kind}.json"
        files[kind].write_text(json.dumps([e for i in order for e in per_image[i][kind]]))
    want = coco_eval.evaluate(annotations, files, order)
    by_image = coco_eval.ImageByImage(load_coco(annotations))
    for image_id in order:
        by_image.add(image_id, per_image[image_id])
    got = by_image.stats()
    assert got == want
    assert all(0.02 < s < 1 for kind in ("bbox", "segm") for s in got[kind]["stats"][:3])  # not all misses


def test_no_detections_at_all_is_said_as_one_cocoeval_says_it(tmp_path):
    rng = np.random.default_rng(1)
    annotations, images, _ = _coco_set(tmp_path, rng)
    by_image = coco_eval.ImageByImage(load_coco(annotations))
    for image in images:
        by_image.add(image["id"], {"bbox": [], "segm": []})
    assert by_image.stats() == {kind: {"stats": [-1.0] * 12, "summary": "no detections"} for kind in ("bbox", "segm")}
