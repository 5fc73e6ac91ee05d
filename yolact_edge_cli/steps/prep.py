"""`yedge prep`: COCO images → `inputs/bin_file/<pos>.bin` + `inputs/ids.json`, exactly the files
the Ascend recipe's preprocess.py writes, in parallel and resumable."""
from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..console import progress_bar
from ..errors import InputError, UsageError
from ..parallel import process_pool
from ..data.preprocess import sample_shape
from ..workspace import Workspace, atomic_path, atomic_write_text, file_size, remove_stale_temp

PLAN_NAME = "prep_plan.json"


@dataclass
class PrepResult:
    images: int
    written: int
    skipped_existing: int
    bad: list[dict] = field(default_factory=list)
    dtype: str = "float32"
    layout: str = "nchw"
    seconds: float = 0.0
    images_per_second: float = 0.0
    bin_dir: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


def bin_dir(ws: Workspace) -> Path:
    return ws.inputs_dir / "bin_file"


def ids_path(ws: Workspace) -> Path:
    return ws.inputs_dir / "ids.json"


def sample_bytes(dtype: str) -> int:
    return math.prod(sample_shape()) * np.dtype(dtype).itemsize


def read_ids(ws: Workspace) -> list[int]:
    path = ids_path(ws)
    if not path.exists():
        raise InputError("no prepared inputs (ids.json missing)", path=path,
                         hint="run `yedge prep --images DIR --annotations FILE` first")
    return json.loads(path.read_text())["ids"]


def _prep_one(task: tuple[int, str, str, str, str]) -> tuple[int, str | None]:
    """Worker: one image to one .bin (temp file + rename). Returns (pos, error or None)."""
    from ..data.preprocess import prepare, read_image
    from ..errors import YedgeError

    pos, image_path, out_path, dtype, layout = task
    try:
        tensor = prepare(read_image(image_path), dtype, layout)[None]
    except YedgeError as exc:
        return pos, exc.message
    with atomic_path(out_path) as tmp:
        tmp.write_bytes(memoryview(np.ascontiguousarray(tensor)))
    return pos, None


def run(ws: Workspace, images: Path, annotations: Path, *, limit: int | None = None,
        workers: int | None = None, dtype: str = "float32", all_images: bool = False,
        skip_bad: bool = False, layout: str = "nchw") -> PrepResult:
    from ..data.coco import image_info, image_order, load_coco
    from ..data.preprocess import INPUT_DTYPES, INPUT_LAYOUTS

    if dtype not in INPUT_DTYPES:
        raise UsageError(f"unknown dtype {dtype!r}", hint="use --dtype float32 or --dtype uint8")
    if layout not in INPUT_LAYOUTS:
        raise UsageError(f"unknown layout {layout!r}", hint="use --layout nchw or --layout nhwc")
    if not Path(images).is_dir():
        raise InputError("image folder not found", path=images, hint="pass --images with the val2017 folder")
    started = time.perf_counter()
    coco = load_coco(annotations)
    ids = image_order(coco, all_images)[: limit if limit else None]
    if not ids:
        raise InputError("no images to prepare (no image has annotations)", path=annotations,
                         hint="pass --all-images to take images without annotations too")
    out_dir, size = bin_dir(ws), sample_bytes(dtype)
    plan = {"images": str(Path(images).absolute()), "annotations": str(Path(annotations).absolute()),
            "ids": ids, "dtype": dtype, "layout": layout}
    _start_plan(ws, plan)
    done_ids = _finished_ids(ws, plan)
    if done_ids is not None:
        return _finish(ws, plan, done_ids, 0, len(done_ids), [], started)

    tasks = [(pos, str(Path(images) / image_info(coco, image_id).file_name),
              str(out_dir / f"{pos}.bin"), dtype, layout)
             for pos, image_id in enumerate(ids) if file_size(out_dir / f"{pos}.bin") != size]
    files = {task[0]: task[1] for task in tasks}
    skipped = len(ids) - len(tasks)
    bad: list[dict] = []
    workers = max(1, workers or os.cpu_count() or 1)
    out_dir.mkdir(parents=True, exist_ok=True)
    remove_stale_temp(out_dir)
    with progress_bar(len(tasks), f"prep {len(ids)} images ({dtype})") as advance:
        advance(0)
        if workers == 1 or len(tasks) < 2:
            results = map(_prep_one, tasks)
            for pos, error in results:
                _note(pos, error, ids, files, bad)
                advance(1)
        else:
            with process_pool(min(workers, len(tasks))) as pool:
                for pos, error in pool.map(_prep_one, tasks, chunksize=2):
                    _note(pos, error, ids, files, bad)
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
        (ws.inputs_dir / PLAN_NAME).unlink()
        _compact(out_dir, good)
    return _finish(ws, plan, [ids[p] for p in good], len(tasks) - len(bad), skipped, bad, started)


def _note(pos: int, error: str | None, ids: list[int], files: dict[int, str], bad: list[dict]) -> None:
    if error is not None:
        bad.append({"position": pos, "id": ids[pos], "file": files[pos], "error": error})


def _start_plan(ws: Workspace, plan: dict) -> None:
    """A different plan (other images, order or dtype) makes existing .bin files stale."""
    path = ws.inputs_dir / PLAN_NAME
    old = json.loads(path.read_text()) if path.exists() else None
    if old == plan:
        return
    ids_path(ws).unlink(missing_ok=True)
    if bin_dir(ws).is_dir():
        for stale in bin_dir(ws).glob("*.bin"):
            stale.unlink()
    atomic_write_text(path, json.dumps(plan) + "\n")


def _finished_ids(ws: Workspace, plan: dict) -> list[int] | None:
    """ids.json is written last: with it present and every file complete, prep is done."""
    path = ids_path(ws)
    if not path.exists():
        return None
    done = json.loads(path.read_text())["ids"]
    size = sample_bytes(plan["dtype"])
    if all(file_size(bin_dir(ws) / f"{pos}.bin") == size for pos in range(len(done))):
        return done
    path.unlink()
    return None


def _compact(out_dir: Path, good: list[int]) -> None:
    """After skipped bad images, renumber files so positions stay 0..n-1 (as ids.json needs)."""
    for new, old in enumerate(good):
        if new != old:
            os.replace(out_dir / f"{old}.bin", out_dir / f"{new}.bin")


def _finish(ws: Workspace, plan: dict, ids: list[int], written: int, skipped: int, bad: list[dict],
            started: float) -> PrepResult:
    atomic_write_text(ids_path(ws), json.dumps({"ids": ids}) + "\n")
    atomic_write_text(ws.inputs_dir / PLAN_NAME, json.dumps(plan) + "\n")
    seconds = time.perf_counter() - started
    result = PrepResult(images=len(ids), written=written, skipped_existing=skipped, bad=bad,
                        dtype=plan["dtype"], layout=plan["layout"], seconds=round(seconds, 2),
                        images_per_second=round(written / seconds, 2) if written else 0.0,
                        bin_dir=str(bin_dir(ws)))
    ws.record("prep", {
        "inputs": {"images": plan["images"], "annotations": plan["annotations"]},
        "options": {"dtype": plan["dtype"], "layout": plan["layout"], "count": len(ids)},
        "outputs": {"bin_dir": ws.relative(bin_dir(ws)), "ids": ws.relative(ids_path(ws))},
        "bad": bad,
    })
    return result
