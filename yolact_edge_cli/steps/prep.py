"""`yedge prep`: COCO images → `inputs/bin_file/<pos>.bin` + `inputs/ids.json`, exactly the files
the Ascend recipe's preprocess.py writes, in parallel and resumable."""
from __future__ import annotations

import contextlib
import json
import math
import os
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..choices import InputDtype, InputLayout
from ..console import progress_bar
from ..data.coco import warn_size_mismatches
from ..data.preprocess import sample_shape
from ..errors import InputError, UsageError
from ..parallel import process_pool
from ..provenance import inputs_fingerprint
from ..records import PrepRecord
from ..workspace import Workspace, atomic_path, atomic_write_text, file_size, remove_stale_temp


@dataclass
class PrepResult:
    images: int
    written: int
    skipped_existing: int
    bad: list[dict] = field(default_factory=list)
    size_mismatches: list[dict] = field(default_factory=list)
    dtype: str = "float32"
    layout: str = "nchw"
    seconds: float = 0.0
    images_per_second: float = 0.0
    bin_dir: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def sample_bytes(dtype: str) -> int:
    return math.prod(sample_shape()) * np.dtype(dtype).itemsize


def _prep_one(task: tuple[int, str, str, str, str]) -> tuple[int, str | None, tuple[int, int]]:
    """Worker: one image to one .bin (temp file + rename). Returns (pos, error or None, the
    decoded image's (width, height))."""
    from ..data.preprocess import prepare, read_image
    from ..errors import YedgeError

    pos, image_path, out_path, dtype, layout = task
    try:
        image = read_image(image_path)
    except YedgeError as exc:
        return pos, exc.message, (0, 0)
    tensor = prepare(image, dtype, layout)[None]
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(np.ascontiguousarray(tensor).data)
    return pos, None, (image.shape[1], image.shape[0])


@dataclass(frozen=True)
class PrepOptions:
    """How `yedge prep` prepares the images, with each default (the CLI reads them here)."""

    limit: int | None = None             # only the first N images
    workers: int | None = None           # None: one per CPU
    dtype: str = InputDtype.FLOAT32.value  # the recipe's .bin
    layout: str = InputLayout.NCHW.value   # the model's; nhwc: HWC pixels for an AIPP .om
    all_images: bool = False             # also images without annotations
    skip_bad: bool = False               # leave unreadable images out instead of failing


def run(ws: Workspace, images: Path, annotations: Path, options: PrepOptions = PrepOptions()) -> PrepResult:
    limit, workers, dtype, layout, all_images, skip_bad = (
        options.limit, options.workers, options.dtype, options.layout, options.all_images, options.skip_bad)
    from ..data.coco import image_info, image_order, load_coco
    from ..data.preprocess import INPUT_DTYPES, INPUT_LAYOUTS

    if dtype not in INPUT_DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint="use --dtype float32 or --dtype uint8")
    if layout not in INPUT_LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint="use --layout nchw or --layout nhwc")
    if layout == "nhwc" and dtype != "uint8":
        raise UsageError("--layout nhwc stores uint8 pixels (for an .om converted with --aipp), not float32",
                         hint="pass --dtype uint8 --layout nhwc, or drop --layout")
    if limit is not None and limit < 1:
        raise UsageError(f"--limit must be at least 1, got {limit}", hint="drop --limit for all images")
    if workers is not None and workers < 1:
        raise UsageError(f"--workers must be at least 1, got {workers}", hint="drop it for one per CPU")
    if Path(images).is_file():
        raise InputError("is a file, not a folder of images", path=images,
                         hint="pass --images with the folder that holds them (e.g. val2017)")
    if not Path(images).is_dir():
        raise InputError("image folder not found", path=images, hint="pass --images with the val2017 folder")
    started = time.perf_counter()
    coco = load_coco(annotations)
    ids = image_order(coco, all_images)[: limit if limit else None]
    if not ids:
        raise InputError("no images to prepare (no image has annotations)", path=annotations,
                         hint="pass --all-images to take images without annotations too")
    out_dir, size = ws.bin_dir, sample_bytes(dtype)
    plan = {"images": str(Path(images).absolute()), "annotations": str(Path(annotations).absolute()),
            "ids": ids, "dtype": dtype, "layout": layout}
    _start_plan(ws, plan)
    done_ids = _finished_ids(ws, plan)
    if done_ids is not None:
        return _finish(ws, coco, plan, done_ids, 0, len(done_ids), [], started)

    tasks = [(pos, str(Path(images) / image_info(coco, image_id).file_name),
              str(out_dir / f"{pos}.bin"), dtype, layout)
             for pos, image_id in enumerate(ids) if file_size(out_dir / f"{pos}.bin") != size]
    files = {task[0]: task[1] for task in tasks}
    skipped = len(ids) - len(tasks)
    bad: list[dict] = []
    workers = max(1, workers or os.cpu_count() or 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(out_dir)
    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(progress_bar(len(tasks), f"prep {len(ids)} images ({dtype})"))
        sizes = stack.enter_context(open(ws.image_sizes, "a", encoding="utf-8"))
        advance(0)
        results: Iterator[tuple[int, str | None, tuple[int, int]]]
        if workers == 1 or len(tasks) < 2:
            results = map(_prep_one, tasks)
        else:
            pool = stack.enter_context(process_pool(min(workers, len(tasks))))
            results = pool.map(_prep_one, tasks, chunksize=2)
        for pos, error, (width, height) in results:
            if error is not None:
                bad.append({"position": pos, "id": ids[pos], "file": files[pos], "error": error})
            else:
                sizes.write(json.dumps({"id": ids[pos], "width": width, "height": height}) + "\n")
                sizes.flush()
            advance(1)
    if bad and not skip_bad:
        listed = "; ".join(f"{b['file']} ({b['error']})" for b in bad[:5])
        more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
        raise InputError(f"{len(bad)} image(s) could not be read: {listed}{more}", path=images,
                         hint="fix or remove them and rerun (finished files are kept), or pass --skip-bad")
    bad_positions = {b["position"] for b in bad}
    good = [pos for pos in range(len(ids)) if pos not in bad_positions]
    if bad:
        # Renumbering breaks the position → image mapping the plan promises; drop the plan
        # until ids.json is written, so an interruption here makes the next run start afresh.
        ws.prep_plan.unlink()
        _compact(out_dir, good)
    return _finish(ws, coco, plan, [ids[p] for p in good], len(tasks) - len(bad), skipped, bad, started)


def _start_plan(ws: Workspace, plan: dict) -> None:
    """A different plan (other images, order or dtype) makes existing .bin files stale."""
    path = ws.prep_plan
    old = json.loads(path.read_text()) if path.exists() else None
    if old == plan:
        return
    ws.ids_path.unlink(missing_ok=True)
    ws.image_sizes.unlink(missing_ok=True)
    if ws.bin_dir.is_dir():
        for stale in ws.bin_dir.glob("*.bin"):
            stale.unlink()
    atomic_write_text(path, json.dumps(plan) + "\n")


def _finished_ids(ws: Workspace, plan: dict) -> list[int] | None:
    """ids.json is written last: with it present and every file complete, prep is done."""
    path = ws.ids_path
    if not path.exists():
        return None
    done = json.loads(path.read_text())["ids"]
    size = sample_bytes(plan["dtype"])
    if all(file_size(ws.bin_dir / f"{pos}.bin") == size for pos in range(len(done))):
        return done
    path.unlink()
    return None


def _compact(out_dir: Path, good: list[int]) -> None:
    """After skipped bad images, renumber files so positions stay 0..n-1 (as ids.json needs)."""
    for new, old in enumerate(good):
        if new != old:
            os.replace(out_dir / f"{old}.bin", out_dir / f"{new}.bin")


def _size_mismatches(ws: Workspace, coco, ids: list[int]) -> list[dict]:
    """Images whose decoded size (EXIF rotation applied, as cv2.imread does) is not the size
    their annotation states. eval keeps the annotation's size (COCOeval compares masks of that
    size); listing them lets a user see which ground truth may not line up."""
    from ..data.coco import image_info

    real: dict[int, tuple[int, int]] = {}
    path = ws.image_sizes
    if path.exists():
        for line in path.read_text(encoding="utf-8").splitlines():
            with contextlib.suppress(ValueError, KeyError, TypeError):
                entry = json.loads(line)
                real[entry["id"]] = (entry["width"], entry["height"])
    found = []
    for image_id in ids:
        info = image_info(coco, image_id)
        if image_id in real and real[image_id] != (info.width, info.height):
            found.append({"id": image_id, "file": info.file_name,
                          "annotated": [info.width, info.height], "actual": list(real[image_id])})
    return found


def _finish(ws: Workspace, coco, plan: dict, ids: list[int], written: int, skipped: int,
            bad: list[dict], started: float) -> PrepResult:
    atomic_write_text(ws.ids_path, json.dumps({"ids": ids}) + "\n")
    atomic_write_text(ws.prep_plan, json.dumps(plan) + "\n")
    mismatches = _size_mismatches(ws, coco, ids)
    warn_size_mismatches(mismatches)
    seconds = time.perf_counter() - started
    result = PrepResult(images=len(ids), written=written, skipped_existing=skipped, bad=bad,
                        size_mismatches=mismatches, dtype=plan["dtype"], layout=plan["layout"],
                        seconds=round(seconds, 2),
                        images_per_second=round(written / seconds, 2) if written else 0.0,
                        bin_dir=str(ws.bin_dir))
    ws.save(PrepRecord(
        images=plan["images"], annotations=plan["annotations"], dtype=plan["dtype"],
        layout=plan["layout"], count=len(ids), bin_dir=ws.relative(ws.bin_dir),
        ids=ws.relative(ws.ids_path), bad=bad, size_mismatches=mismatches,
        fingerprint=inputs_fingerprint(plan["images"], plan["annotations"], ids, plan["dtype"],
                                       plan["layout"])))
    return result
