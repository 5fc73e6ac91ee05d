"""COCO annotations: which images are evaluated, in which order, where their files are."""
from __future__ import annotations

import contextlib
import io
import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError


@dataclass(frozen=True)
class ImageInfo:
    id: int
    file_name: str
    width: int
    height: int


def load_coco(annotations: str | Path):
    """pycocotools COCO object, with its chatter silenced and bad files turned into clear errors."""
    from pycocotools.coco import COCO

    path = Path(annotations)
    if not path.is_file():
        raise InputError("annotation file not found", path=path,
                         hint="pass --annotations with a COCO instances_*.json file")
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise InputError(f"annotation file is not valid JSON ({str(exc)[:80]})", path=path,
                         hint="pass a COCO instances_*.json file") from None
    if not isinstance(data, dict) or not isinstance(data.get("images"), list) \
            or not isinstance(data.get("annotations"), list):
        raise InputError("not a COCO instances file (needs 'images' and 'annotations' lists)",
                         path=path, hint="pass a COCO instances_*.json file such as instances_val2017.json")
    coco = COCO()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.dataset = data
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise InputError(f"malformed COCO annotations (missing field {exc})", path=path,
                         hint="check the file against the COCO format") from None
    return coco


def image_order(coco, all_images: bool = False) -> list[int]:
    """The recipe's order: images that have annotations, in pycocotools' imgToAnns order;
    with all_images, the images without annotations follow in file order."""
    ids = list(coco.imgToAnns.keys())
    if all_images:
        seen = set(ids)
        ids += [i for i in coco.imgs if i not in seen]
    return ids


def image_info(coco, image_id: int) -> ImageInfo:
    img = coco.imgs[image_id]
    return ImageInfo(int(img["id"]), img["file_name"], int(img["width"]), int(img["height"]))
