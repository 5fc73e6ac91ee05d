"""Detections drawn on an image — each mask translucent in its own colour, its box, class name
and score — the look of `yedge show` and `yedge predict`."""
from __future__ import annotations

import colorsys
from dataclasses import dataclass

import numpy as np


def colour(index: int) -> tuple[int, int, int]:
    """Well-separated hues by the golden ratio; BGR for OpenCV."""
    r, g, b = colorsys.hsv_to_rgb((index * 0.618033988749895) % 1.0, 0.85, 1.0)
    return int(b * 255), int(g * 255), int(r * 255)


@dataclass(frozen=True)
class DrawStyle:
    """How predict draws (the options `yolo predict` users reach for): box line width in pixels
    (0: no box), and whether labels, and the score in them, are written."""

    line_width: int = 2
    labels: bool = True
    confidence: bool = True


def draw(image: np.ndarray, instances: list[dict], alpha: float = 0.5, line_width: int = 2) -> np.ndarray:
    """instances: {'mask': HxW uint8, 'bbox': [x, y, w, h], 'label': str (empty: none), and
    optionally 'colour': an index (a class's or a track's, the same from image to image)}."""
    import cv2

    canvas = image.copy()
    for i, inst in enumerate(instances):
        bgr = colour(inst.get("colour", i))
        tint = np.array(bgr, dtype=np.float32)
        mask = inst["mask"].astype(bool)
        canvas[mask] = (canvas[mask] * (1 - alpha) + tint * alpha).astype(np.uint8)
        x, y, w, h = (int(round(v)) for v in inst["bbox"])
        if line_width > 0:
            cv2.rectangle(canvas, (x, y), (x + w, y + h), bgr, line_width)
        if inst["label"]:
            cv2.putText(canvas, inst["label"], (x + 2, max(12, y - 4)), cv2.FONT_HERSHEY_SIMPLEX, 0.45,
                        bgr, 1, cv2.LINE_AA)
    return canvas


def decode_rle(rle: dict) -> np.ndarray:
    """A COCO RLE ({'size': [h, w], 'counts': compressed text}) as an h × w uint8 mask, decoded
    here rather than by pycocotools, whose decode goes through numpy's deprecated `__array__`
    fallback (a Ctrl-C landing inside it surfaces as a TypeError instead of an interrupt)."""
    height, width = (int(v) for v in rle["size"])
    text = rle["counts"].encode() if isinstance(rle["counts"], str) else rle["counts"]
    counts: list[int] = []
    pos = 0
    while pos < len(text):  # each count: 5-bit groups, 0x20 = more follow, sign in the last one
        value, shift, more = 0, 0, True
        while more:
            chunk = text[pos] - 48
            value |= (chunk & 0x1F) << shift
            more = bool(chunk & 0x20)
            pos += 1
            shift += 5
            if not more and chunk & 0x10:
                value |= -1 << shift
        if len(counts) > 2:  # runs after the second are stored as differences
            value += counts[-2]
        counts.append(value)
    runs = np.repeat(np.arange(len(counts)) % 2, counts).astype(np.uint8)
    return runs.reshape(width, height).T.copy() if runs.size else np.zeros((height, width), np.uint8)


def draw_detections(image: np.ndarray, detections: list[dict], style: DrawStyle = DrawStyle()) -> np.ndarray:
    """predictions.jsonl detections ({'class', 'category_id', 'score', 'box': x1,y1,x2,y2, 'mask':
    RLE}) drawn in their class's colour; a tracked one ('track_id') in its identity's, labelled
    with it."""
    instances = []
    for d in detections:
        track_id = d.get("track_id")
        tracked = track_id is not None
        parts = [f"#{track_id}"] * tracked + [d["class"]] + [f"{d['score']:.2f}"] * style.confidence
        instances.append({"mask": decode_rle(d["mask"]),
                          "bbox": [d["box"][0], d["box"][1], d["box"][2] - d["box"][0], d["box"][3] - d["box"][1]],
                          "label": " ".join(parts) if style.labels else "",
                          "colour": track_id if tracked else d["category_id"]})
    return draw(image, instances, line_width=style.line_width)
