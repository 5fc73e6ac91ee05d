"""`yedge eval`: host-side heads (fpn layout) + Detect + masks at each image's size → COCO
results, pycocotools box/mask mAP, and YOLACT's own mAP table (the recipe's metric)."""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from ..console import progress_bar
from ..data.coco import load_coco, require_images
from ..data import binio
from ..errors import InputError, UsageError
from ..model.config import CONFIGS, DEFAULT_CONFIG
from ..model.detect import NMS_METHODS
from ..model.yolact import output_shapes
from ..parallel import process_pool
from ..provenance import check_same_checkpoint, check_same_inputs, read_run
from ..workspace import Workspace, atomic_copy, atomic_write_text, sha256_file

STAGES = ("read", "heads", "detect", "masks", "json", "match")
BBOX_RESULTS = "bbox_detections.json"
MASK_RESULTS = "mask_detections.json"
METRICS = "metrics.json"


@dataclass
class EvalResult:
    images: int
    layout: str
    nms: str
    output_dtype: str
    coco: dict = field(default_factory=dict)
    yolact_ap: dict = field(default_factory=dict)
    host_ms_per_image: dict = field(default_factory=dict)
    seconds: float = 0.0
    results_dir: str = ""
    missing: list[int] = field(default_factory=list)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class EvalJob:
    """What each worker needs to post-process images on its own."""

    run_dir: str
    layout: str
    output_dtype: str
    weights: str | None
    config: str
    annotations: str
    nms: str
    score_threshold: float
    threads: int


_WORKER: dict = {}


def init_worker(job: EvalJob) -> None:
    """Load once per worker: head weights, priors, the annotations."""
    import torch

    from ..model.head import priors_tensor

    torch.set_num_threads(job.threads)
    cfg = CONFIGS[job.config]
    head = None
    if job.layout == "fpn":
        from ..model.checkpoint import load_model

        head = load_model(job.weights, job.config).head
    _WORKER.update(job=job, cfg=cfg, head=head, priors=priors_tensor(cfg),
                   coco=load_coco(job.annotations), shapes=[(1, *s) for s in output_shapes(job.layout).values()])


def read_outputs(run_dir: Path, pos: int, dtype: str) -> list:
    """One sample's output files as float32 tensors with a batch dimension of 1."""
    import torch

    return [torch.from_numpy(np.fromfile(run_dir / f"{pos}_{k}.bin", dtype=dtype)
                             .astype(np.float32, copy=False).reshape(shape))
            for k, shape in enumerate(_WORKER["shapes"])]


def image_detections(arrays: list, image_id: int, times: dict):
    """Model outputs of one image → heads (fpn layout) → Detect → masks and boxes at the
    image's original size (an ImageResult), adding each stage's seconds to `times`."""
    import torch

    from ..data.coco import image_info
    from ..model.detect import detect_image
    from ..model.head import run_heads
    from ..model.masks import postprocess

    job: EvalJob = _WORKER["job"]
    t = time.perf_counter()
    with torch.inference_mode():
        if job.layout == "fpn":
            loc, conf, coef = run_heads(_WORKER["head"], arrays[:5])
        else:
            loc, conf, coef = arrays[0], arrays[1], arrays[2]
        times["heads"] = time.perf_counter() - t
        t = time.perf_counter()
        dets = detect_image(loc[0], conf[0], coef[0], _WORKER["priors"], _WORKER["cfg"], job.nms)
        times["detect"] = time.perf_counter() - t
        t = time.perf_counter()
        info = image_info(_WORKER["coco"], image_id)
        result = postprocess(dets, arrays[-1][0], info.width, info.height, job.score_threshold)
    times["masks"] = time.perf_counter() - t
    return result, info


def host_postprocess(arrays: list, image_id: int) -> tuple[list, list, dict, dict]:
    """`image_detections`, then COCO entries and YOLACT matches, with the seconds of each stage."""
    from ..metrics.results import coco_entries, encode_masks
    from ..metrics.yolact_ap import ground_truth, match_image

    times: dict = {}
    result, info = image_detections(arrays, image_id, times)
    t = time.perf_counter()
    rles = encode_masks(result)
    bbox, mask = coco_entries(image_id, result, rles)
    times["json"] = time.perf_counter() - t
    t = time.perf_counter()
    matches = match_image(result, rles, ground_truth(_WORKER["coco"], image_id, info.width, info.height))
    times["match"] = time.perf_counter() - t
    return bbox, mask, matches, times


def _process(task: tuple[int, int]):
    pos, image_id = task
    job: EvalJob = _WORKER["job"]
    t = time.perf_counter()
    arrays = read_outputs(Path(job.run_dir), pos, job.output_dtype)
    read = time.perf_counter() - t
    bbox, mask, matches, times = host_postprocess(arrays, image_id)
    return pos, bbox, mask, matches, {"read": read, **times}


def resolve_annotations(ws: Workspace, annotations: Path | None) -> Path:
    if annotations is not None:
        return Path(annotations)
    entry = ws.require("prep", "prepared inputs", "yedge prep --images DIR --annotations FILE")
    return Path(entry["inputs"]["annotations"])


def resolve_host_model(ws: Workspace, layout: str, weights: Path | None,
                       config: str | None) -> tuple[Path | None, str]:
    """The checkpoint and config for the host part: the fpn layout needs the head weights.
    The checkpoint export recorded was already matched to its config; only another one is read."""
    export_entry = ws.step("export") or {}
    recorded = export_entry.get("options", {}).get("config")
    if layout != "fpn":
        return weights, config or recorded or DEFAULT_CONFIG
    if weights is None:
        if "inputs" not in export_entry:
            raise InputError("the fpn layout needs the checkpoint for the host-side heads",
                             hint="pass --weights X.pth (or run `yedge export` in this workspace)")
        weights = Path(export_entry["inputs"]["weights"])
        if recorded and config in (None, recorded):
            return weights, recorded
    from ..model.checkpoint import match_config, normalize_keys, read_state_dict

    return weights, match_config(normalize_keys(read_state_dict(weights)), config or "auto", weights).name


def host_job(ws: Workspace, layout: str, *, run_dir: Path | str = "", output_dtype: str = "float32",
             weights: Path | None = None, config: str | None = None, annotations: Path | None = None,
             nms: str = "fast", score_threshold: float = 0.0, threads: int | None = None) -> EvalJob:
    """Everything the host part needs, resolved from the workspace (used by eval, compare, bench)."""
    weights, config = resolve_host_model(ws, layout, weights, config)
    return EvalJob(str(run_dir), layout, output_dtype, str(weights) if weights else None, config,
                   str(resolve_annotations(ws, annotations)), nms, score_threshold,
                   threads=threads or os.cpu_count() or 1)


def run(ws: Workspace, *, outputs: Path | None = None, annotations: Path | None = None,
        weights: Path | None = None, config: str | None = None, nms: str = "fast",
        score_threshold: float = 0.0, max_images: int | None = None, workers: int | None = None,
        fast_eval: bool = False, allow_missing: bool = False) -> EvalResult:
    if nms not in NMS_METHODS:
        raise UsageError(f"unknown NMS {nms!r}", hint="use --nms fast or --nms traditional")
    for option, value in (("--max-images", max_images), ("--workers", workers)):
        if value is not None and value < 1:
            raise UsageError(f"{option} must be at least 1, got {value}", hint=f"drop {option} for the default")
    started = time.perf_counter()
    if outputs is None:
        infer_entry = ws.step("infer")
        if infer_entry is None:
            ws.require("infer", "inference outputs", "yedge infer")
        outputs = ws.resolve(infer_entry["outputs"]["run_dir"])
    run_dir = Path(outputs)
    if not run_dir.is_dir():
        raise InputError("outputs folder not found", path=run_dir, hint="run `yedge infer` first")
    ids = ws.read_ids()[: max_images if max_images else None]
    record = read_run(run_dir)
    check_same_inputs(str(run_dir), record.inputs_fingerprint if record else None, ws,
                      fix=f"rerun `yedge infer --run {run_dir.name} --overwrite` on the current inputs")
    layout = binio.run_layout(run_dir)
    dtypes = [binio.sample_dtype(run_dir, str(pos), layout) for pos in range(len(ids))]
    output_dtype = next((d for d in dtypes if d), "float32")
    present = [d == output_dtype for d in dtypes]
    missing = [ids[pos] for pos, ok in enumerate(present) if not ok]
    if missing and not allow_missing:
        listed = ", ".join(map(str, missing[:10])) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise InputError(f"outputs missing or incomplete for {len(missing)} image(s): ids {listed}",
                         path=run_dir, hint="rerun `yedge infer` (it resumes), or pass --allow-missing")
    tasks = [(pos, ids[pos]) for pos, ok in enumerate(present) if ok]
    if not tasks:
        raise InputError("no complete outputs to evaluate", path=run_dir, hint="run `yedge infer` first")
    workers = max(1, min(workers or os.cpu_count() or 1, len(tasks)))
    job = host_job(ws, layout, run_dir=run_dir, output_dtype=output_dtype, weights=weights,
                   config=config, annotations=annotations, nms=nms, score_threshold=score_threshold,
                   threads=max(1, (os.cpu_count() or 1) // workers))
    if layout == "fpn":
        origin = record.origin if record else None
        check_same_checkpoint(str(run_dir), origin, Path(job.weights), fix=(
            f"pass --weights {origin.weights} (the checkpoint it came from), or rerun `yedge infer "
            f"--run {run_dir.name} --overwrite` with the current model") if origin else "")
    require_images(load_coco(job.annotations), [image_id for _, image_id in tasks], job.annotations)

    from ..metrics.yolact_ap import APAccumulator

    accumulator = APAccumulator()
    per_image: dict[int, tuple[list, list]] = {}
    totals = dict.fromkeys(STAGES, 0.0)
    with progress_bar(len(tasks), f"eval {len(tasks)} images ({layout} layout, {nms} NMS)") as advance:
        advance(0)
        if workers == 1:
            init_worker(job)
            results = map(_process, tasks)
            _collect(results, per_image, accumulator, totals, advance)
        else:
            with process_pool(workers, init_worker, (job,)) as pool:
                _collect(pool.map(_process, tasks, chunksize=1), per_image, accumulator, totals, advance)
    host_seconds = time.perf_counter() - started

    bbox_entries = [e for pos in sorted(per_image) for e in per_image[pos][0]]
    mask_entries = [e for pos in sorted(per_image) for e in per_image[pos][1]]
    run_results = ws.results_dir / run_dir.name
    results_paths = {"bbox": run_results / BBOX_RESULTS, "segm": run_results / MASK_RESULTS}
    atomic_write_text(results_paths["bbox"], json.dumps(bbox_entries))
    atomic_write_text(results_paths["segm"], json.dumps(mask_entries))
    from ..metrics import coco_eval

    evaluated_ids = [image_id for _, image_id in tasks]
    coco = coco_eval.evaluate(Path(job.annotations), results_paths, evaluated_ids, fast=fast_eval)
    result = EvalResult(
        images=len(tasks), layout=layout, nms=nms, output_dtype=output_dtype, coco=coco,
        yolact_ap=accumulator.table(),
        host_ms_per_image={k: round(v / len(tasks) * 1000, 2) for k, v in totals.items()}
        | {"wall": round(host_seconds / len(tasks) * 1000, 2)},
        seconds=round(time.perf_counter() - started, 2), results_dir=str(run_results),
        missing=missing)
    metrics = {**result.to_dict(), "provenance": {
        # what computed the outputs evaluated here: the run folder's own record
        "run": run_dir.name, "backend": record.backend if record else None,
        "device": record.device if record else None, "model": record.model if record else None,
        "model_sha256": record.model_sha256 if record else None,
        "model_weights_sha256": record.weights_sha256 if record else None,
        "weights": job.weights, "config": job.config,
        "outputs": str(run_dir), "annotations": job.annotations, "image_ids": evaluated_ids,
        "score_threshold": score_threshold, "workers": workers}}
    results_paths["metrics"] = run_results / METRICS
    atomic_write_text(results_paths["metrics"], json.dumps(metrics, indent=2) + "\n")
    for path in results_paths.values():  # the latest evaluation also where the README says
        atomic_copy(path, ws.results_dir / path.name)
    ws.record("eval", {
        "inputs": {"outputs": str(run_dir), "annotations": job.annotations, "weights": job.weights,
                   "inputs_fingerprint": record.inputs_fingerprint if record else None,
                   "model_weights": record.weights if record else None,
                   "model_weights_sha256": record.weights_sha256 if record else None},
        "options": {"nms": nms, "score_threshold": score_threshold, "images": len(tasks),
                    "layout": layout, "config": job.config},
        "outputs": {"run": run_dir.name, "bbox": ws.relative(results_paths["bbox"]),
                    "segm": ws.relative(results_paths["segm"]),
                    "metrics": ws.relative(results_paths["metrics"]),
                    "bbox_sha256": sha256_file(results_paths["bbox"])},
        "summary": {"box_all": result.yolact_ap["box"]["all"], "mask_all": result.yolact_ap["mask"]["all"],
                    "coco_bbox_AP": coco["bbox"]["stats"][0], "coco_segm_AP": coco["segm"]["stats"][0]},
    })
    return result


def _collect(results, per_image, accumulator, totals, advance) -> None:
    for pos, bbox, mask, matches, times in results:
        per_image[pos] = (bbox, mask)
        accumulator.add(matches)
        for key, value in times.items():
            totals[key] += value
        advance(1)


def reported_maps(result: dict) -> dict[str, float]:
    """Every mAP eval reports, in points (percent): YOLACT's table and COCOeval's AP."""
    maps = {f"yolact {kind} {key}": value for kind in ("box", "mask")
            for key, value in result["yolact_ap"][kind].items()}
    for iou_type, kind in (("bbox", "box"), ("segm", "mask")):
        maps[f"coco {kind} AP"] = result["coco"][iou_type]["stats"][0] * 100
    return maps


@dataclass
class Gates:
    """Accuracy gates: the YOLACT `all` mAP of `map_kind` must reach `min_map`, and no reported
    mAP may move by more than `tolerance` points from a previous metrics.json. Built before the
    evaluation, so a bad gate is reported before any work."""

    min_map: float | None = None
    map_kind: str = "box"
    against: Path | None = None
    tolerance: float = 0.3
    previous: dict[str, float] = field(default_factory=dict, init=False)

    def __post_init__(self) -> None:
        if self.map_kind not in ("box", "mask"):
            raise UsageError(f"unknown mAP kind {self.map_kind!r}", hint="use --map-kind box or mask")
        if self.tolerance < 0:
            raise UsageError(f"--tolerance must be ≥ 0, got {self.tolerance}", hint="e.g. --tolerance 0.3")
        if self.against is None:
            return
        try:
            self.previous = reported_maps(json.loads(Path(self.against).read_text()))
        except FileNotFoundError:
            raise InputError("metrics file not found", path=self.against,
                             hint="pass a results/metrics.json written by `yedge eval`") from None
        except (OSError, ValueError, KeyError, TypeError) as exc:
            raise InputError(f"not a yedge metrics.json ({type(exc).__name__})", path=self.against,
                             hint="pass a results/metrics.json written by `yedge eval`") from None

    def check(self, result: EvalResult) -> None:
        from ..errors import AccuracyError

        if self.min_map is not None:
            value = result.yolact_ap[self.map_kind]["all"]
            if value < self.min_map:
                raise AccuracyError(f"{self.map_kind} mAP {value:.2f} is below the required {self.min_map:.2f}",
                                    hint="check the conversion (precision mode, NMS, inputs) with `yedge compare`")
        if self.against is not None:
            current = reported_maps(result.to_dict())
            moved = {k: current[k] - self.previous[k] for k in current
                     if k in self.previous and abs(current[k] - self.previous[k]) > self.tolerance}
            if moved:
                listed = ", ".join(f"{k} {d:+.2f}" for k, d in list(moved.items())[:5])
                raise AccuracyError(f"{len(moved)} mAP(s) moved more than {self.tolerance} points from "
                                    f"{self.against}: {listed}", hint="compare the two runs with `yedge compare`")
