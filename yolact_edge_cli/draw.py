"""Detections drawn on an image — each mask translucent in its own colour, its box, class name
and score — the look of `yedge show` and `yedge predict`."""
from __future__ import annotations

import colorsys

import numpy as np


def colour(index: int) -> tuple[int, int, int]:
    """Well-separated hues by the golden ratio; BGR for OpenCV."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


def draw(image: np.ndarray, instances: list[dict], alpha: float = 0.5) -> np.ndarray:
    """instances: {'mask': HxW uint8, 'bbox': [x, y, w, h], 'label': str}."""
    import cv2

    canvas = image.copy()
    for i, inst in enumerate(instances):
        tint = np.array(colour(i), dtype=np.float32)
        mask = inst["mask"].astype(bool)
        canvas[mask] = (canvas[mask] * (1 - alpha) + tint * alpha).astype(np.uint8)
        x, y, w, h = (int(round(v)) for v in inst["bbox"])
        cv2.rectangle(canvas, (x, y), (x + w, y + h), colour(i), 2)
        cv2.putText(canvas, inst["label"], (x + 2, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                    colour(i), 1, cv2.LINE_AA)
    return canvas


def draw_detections(image: np.ndarray, detections: list[dict]) -> np.ndarray:
    """predictions.jsonl detections ({'class', 'score', 'box': x1,y1,x2,y2, 'mask': RLE}) drawn."""
    from pycocotools import mask as mask_utils

    instances = [{"mask": mask_utils.decode({"size": d["mask"]["size"], "counts": d["mask"]["counts"].encode()}),
                  "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]],
                  "label": f"{d['class']} {d['score']:.2f}"} for d in detections]
    return draw(image, instances)
