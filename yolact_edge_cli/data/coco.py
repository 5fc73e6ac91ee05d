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
    if path.is_dir():
        raise InputError("is a folder, not an annotation file", path=path,
                         hint="pass --annotations with the COCO instances_*.json file itself")
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
    problems = annotation_problems(data)
    if problems:
        raise InputError("invalid COCO annotations: " + "; ".join(problems), path=path,
                         hint="fix the file (COCO's instances format, the model's category ids); "
                              "nothing was computed")
    coco = COCO()
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            coco.dataset = data
            coco.createIndex()
    except (KeyError, TypeError) as exc:
        raise InputError(f"malformed COCO annotations (missing field {exc})", path=path,
                         hint="check the file against the COCO format") from None
    return coco


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _segmentation_ok(seg) -> bool:
    """Polygons (lists of ≥ 3 x,y pairs) or an RLE (size + counts, compressed or not)."""
    if isinstance(seg, list):
        return bool(seg) and all(isinstance(p, list) and len(p) >= 6 and len(p) % 2 == 0
                                 and all(_is_number(v) for v in p) for p in seg)
    if isinstance(seg, dict):
        size = seg.get("size")
        return isinstance(size, list) and len(size) == 2 and all(_is_int(v) and v > 0 for v in size) \
            and isinstance(seg.get("counts"), (str, list))
    return False


class _Problems:
    """Problems grouped by kind, each kept as a count and the first few examples."""

    SHOWN = 3

    def __init__(self):
        self.kinds: dict[str, list] = {}

    def add(self, kind: str, example) -> None:
        self.kinds.setdefault(kind, []).append(example)

    def lines(self) -> list[str]:
        out = []
        for kind, examples in self.kinds.items():
            shown = ", ".join(map(str, examples[: self.SHOWN]))
            more = f" and {len(examples) - self.SHOWN} more" if len(examples) > self.SHOWN else ""
            out.append(f"{len(examples)} {kind} ({shown}{more})")
        return out


def annotation_problems(data: dict) -> list[str]:
    """Everything in a COCO instances file that would make a step drop, mix up or crash on
    images later: one line per kind of problem, with a count and the first few ids. Crowd
    annotations (RLE segmentations, iscrowd 1) are valid."""
    found = _Problems()
    files: dict[int, str] = {}
    for index, img in enumerate(data["images"]):
        image_id = img.get("id") if isinstance(img, dict) else None
        if not _is_int(image_id):
            found.add("image(s) whose id is not an integer", f"images[{index}]: {image_id!r}")
            continue
        if img["id"] in files:
            found.add("duplicated image id(s)", f"{img['id']}: {files[img['id']]} and {img.get('file_name')}")
            continue
        files[img["id"]] = img.get("file_name")
        if not isinstance(img.get("file_name"), str) or not img["file_name"]:
            found.add("image(s) without a file_name", img["id"])
        if not all(_is_int(img.get(k)) and img[k] > 0 for k in ("width", "height")):
            found.add("image(s) without a positive integer width/height", img["id"])
    categories = data.get("categories")
    category_ids: set = set()
    if not isinstance(categories, list) or not categories:
        found.add("missing 'categories' list", "the file has none")
    else:
        for cat in categories:
            cid = cat.get("id") if isinstance(cat, dict) else None
            if not _is_int(cid):
                found.add("category(ies) whose id is not an integer", repr(cid))
            elif cid in category_ids:
                found.add("duplicated category id(s)", cid)
            category_ids.add(cid)
        if category_ids and all(_is_int(c) for c in category_ids) and not label_sets_of(categories):
            stray = [c for c in categories if not label_sets_of([c])]
            for cat in stray:
                found.add("category id(s) of no label set a model predicts (COCO's 80, YouTube-VIS's 40)",
                          f"{cat.get('id')}")
            if not stray:
                found.add("category ids that mix COCO's and YouTube-VIS's", len(categories))
    annotation_ids: set = set()
    for index, ann in enumerate(data["annotations"]):
        if not isinstance(ann, dict) or not _is_int(ann.get("id")):
            found.add("annotation(s) whose id is not an integer", f"annotations[{index}]")
            continue
        aid = ann["id"]
        if aid in annotation_ids:
            found.add("duplicated annotation id(s)", aid)
        annotation_ids.add(aid)
        if ann.get("image_id") not in files:
            found.add("annotation(s) of an unknown image_id", f"{aid} → image {ann.get('image_id')!r}")
        if categories and ann.get("category_id") not in category_ids:
            found.add("annotation(s) of a category_id not in 'categories'", f"{aid} → {ann.get('category_id')!r}")
        bbox = ann.get("bbox")
        if not (isinstance(bbox, list) and len(bbox) == 4 and all(_is_number(v) for v in bbox)
                and bbox[2] >= 0 and bbox[3] >= 0):
            found.add("annotation(s) without a valid bbox [x, y, w, h]", aid)
        if not _is_number(ann.get("area")):
            found.add("annotation(s) without a numeric area", aid)
        if not _segmentation_ok(ann.get("segmentation")):
            found.add("annotation(s) without a valid segmentation (polygons or RLE)", aid)
        if ann.get("iscrowd", 0) not in (0, 1):
            found.add("annotation(s) whose iscrowd is not 0 or 1", aid)
    return found.lines()


def label_sets_of(categories: list) -> list:
    """The label sets (model/config.py LABEL_SETS) these categories can be: every category id is
    one of the set's. Where the ids fit both (a file of ids 1–40 without COCO's gaps, say person
    alone), the names decide when they are a set's own; otherwise both remain."""
    from ..model.config import LABEL_SETS

    ids = [c.get("id") if isinstance(c, dict) else None for c in categories]
    by_id = [labels for labels in LABEL_SETS if all(i in labels.category_ids for i in ids)]

    def named(labels) -> bool:
        names = dict(zip(labels.category_ids, labels.names))
        return all(str(c.get("name", "")).lower() == names[c["id"]].lower() for c in categories)

    return [labels for labels in by_id if named(labels)] or by_id


def require_label_set(coco, labels, path: str | Path) -> None:
    """The annotations' categories are the model's classes (COCO's for an image model,
    YouTube-VIS's for a video model), or nothing could be matched."""
    if labels not in label_sets_of(coco.dataset.get("categories", [])):
        raise InputError(f"these annotations' categories are not the model's {labels.dataset} classes",
                         path=path, hint=f"evaluate a {labels.dataset} model on {labels.dataset} annotations "
                                         "(docs/model.md §8, docs/video.md)")


def image_order(coco, all_images: bool = False) -> list[int]:
    """The recipe's order: images that have annotations, in pycocotools' imgToAnns order;
    with all_images, the images without annotations follow in file order."""
    ids = list(coco.imgToAnns.keys())
    if all_images:
        seen = set(ids)
        ids += [i for i in coco.imgs if i not in seen]
    return ids


def videos_of(coco, ids: list[int]) -> list[list[int]] | None:
    """Per-frame annotations of videos (YouTube-VIS converted per frame: every image has an integer
    `video_id` and `frame_id`): the image ids of each video in frame order, the videos in the
    order they first appear; None when the images are not all such frames."""
    images = [coco.imgs[i] for i in ids]
    if not images or not all(_is_int(img.get("video_id")) and _is_int(img.get("frame_id")) for img in images):
        return None
    videos: dict[int, list[dict]] = {}
    for img in images:
        videos.setdefault(img["video_id"], []).append(img)
    return [[img["id"] for img in sorted(frames, key=lambda img: img["frame_id"])] for frames in videos.values()]


def require_images(coco, ids: list[int], path: str | Path) -> None:
    """Every prepared image must be in the annotations a later step reads (another file given
    with --annotations would otherwise evaluate images against nothing, or crash)."""
    unknown = [i for i in ids if i not in coco.imgs]
    if unknown:
        listed = ", ".join(map(str, unknown[:5])) + (f" and {len(unknown) - 5} more" if len(unknown) > 5 else "")
        raise InputError(f"{len(unknown)} prepared image id(s) are not in these annotations: {listed}",
                         path=path, hint="pass the annotation file prep used, or rerun `yedge prep` with this one")


def image_info(coco, image_id: int) -> ImageInfo:
    img = coco.imgs[image_id]
    return ImageInfo(int(img["id"]), img["file_name"], int(img["width"]), int(img["height"]))


def warn_size_mismatches(mismatches: list[dict]) -> None:
    """The warning prep and streaming eval give for images whose decoded size is not their
    annotation's ({"file", "annotated": [w, h], "actual": [w, h]} each)."""
    if not mismatches:
        return
    from rich.markup import escape

    from ..console import err

    listed = ", ".join(f"{m['file']} (annotated {m['annotated'][0]}×{m['annotated'][1]}, "
                       f"actual {m['actual'][0]}×{m['actual'][1]})" for m in mismatches[:5])
    more = f" and {len(mismatches) - 5} more" if len(mismatches) > 5 else ""
    err.print(f"[yellow]warning:[/] {len(mismatches)} image(s) differ in size from their "
              f"annotations: {escape(listed)}{more}; eval uses the annotated size (as COCOeval needs), "
              "so their masks are resized to it", highlight=False, soft_wrap=True)
