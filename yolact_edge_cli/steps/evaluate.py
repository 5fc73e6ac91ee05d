"""`yedge eval`: host-side heads (fpn layout) + Detect + masks at each image's size → COCO
results, pycocotools box/mask mAP, and YOLACT's own mAP table (the recipe's metric)."""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import plots
from ..choices import Backend, Engine, Nms
from ..console import progress_bar
from ..data import binio
from ..data.coco import image_info, load_coco, require_images, require_label_set
from ..errors import InputError, UsageError
from ..host import HOST_STAGES, HostPipeline, HostSpec
from ..metrics import coco_eval
from ..metrics.curves import Curves, per_class_table
from ..model.config import CONFIGS, KEYFRAME_INTERVAL, LabelSet
from ..model.contract import output_shapes
from ..parallel import process_pool
from ..provenance import check_same_inputs, read_run
from ..records import EvalRecord, InferRecord, PrepRecord
from ..resolve import annotations_for, host_spec
from ..timing import StageTimes
from ..workspace import (
    BBOX_RESULTS,
    CURVES_DATA,
    MASK_RESULTS,
    METRICS,
    STREAM_RUN,
    Workspace,
    atomic_copy,
    atomic_path,
    atomic_write_text,
    sha256_file,
)

if TYPE_CHECKING:
    from ..stream.ray_cluster import RaySettings

STAGES = ("read", *HOST_STAGES, "match")
STREAM_STAGES = ("decode", "inference", *HOST_STAGES, "match")  # streaming: decode, not read


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
    streamed: bool = False  # images → model → host in one pass (wall time includes the model)
    # a video model on per-frame annotations (docs/video.md §6): the videos, the keyframe interval
    # and the frames that ran as keyframes
    videos: int = 0
    keyframe_interval: int | None = None
    keyframes: int | None = None
    # streaming: images that could not be read and were left out (--skip-bad), and those whose
    # decoded size is not their annotation's (prep's record of the same names)
    bad: list[dict] = field(default_factory=list)
    size_mismatches: list[dict] = field(default_factory=list)
    # per class: instances, box and mask AP (metrics/curves.py per_class_table); the pictures drawn
    per_class: list[dict] = field(default_factory=list)
    pictures: list[str] = field(default_factory=list)
    print_per_class: bool = False  # --per-class: the table drawn for people too (JSON always holds it)

    def to_dict(self) -> dict:
        fields = asdict(self)
        del fields["print_per_class"]
        return fields


@dataclass(frozen=True)
class EvalJob:
    """What each worker needs to post-process images on its own."""

    run_dir: str
    output_dtype: str
    annotations: str
    host: HostSpec


class _Worker:
    """One per process: the host pipeline, the annotations, the shapes of the output files."""

    def __init__(self, job: EvalJob, coco=None):
        self.job = job
        self.pipeline = HostPipeline(job.host)
        self.coco = coco if coco is not None else load_coco(job.annotations)
        self.shapes = [(1, *shape) for shape in output_shapes(job.host.layout).values()]

    def __call__(self, task: tuple[int, int]):
        from ..metrics.yolact_ap import ground_truth, match_image

        pos, image_id = task
        times = StageTimes()
        with times.time("read"):
            arrays = [np.fromfile(Path(self.job.run_dir) / f"{pos}_{k}.bin", dtype=self.job.output_dtype)
                      .astype(np.float32, copy=False).reshape(shape) for k, shape in enumerate(self.shapes)]
        info = image_info(self.coco, image_id)
        result = self.pipeline(arrays, info.width, info.height, times)
        bbox, mask, rles = self.pipeline.to_coco(image_id, result, times)
        t = time.perf_counter()
        matches = match_image(result, rles, ground_truth(self.coco, image_id, info.width, info.height,
                                                         self.pipeline.cfg.labels))
        times["match"] = time.perf_counter() - t
        return pos, bbox, mask, matches, times


_worker: _Worker | None = None  # this process's worker, when eval runs in a pool


def _init_worker(job: EvalJob) -> None:
    global _worker
    _worker = _Worker(job)


def _process(task: tuple[int, int]):
    assert _worker is not None
    return _worker(task)


@dataclass(frozen=True)
class EvalOptions:
    """What eval computes, on either path (a run folder's outputs, or streamed), with each
    option's default (the CLI reads them here)."""

    annotations: Path | None = None  # None: the file prep used
    weights: Path | None = None      # the host heads' checkpoint (fpn layout); None: export's
    config: str | None = None        # the weights' config; None: told from the checkpoint
    nms: str = Nms.FAST.value        # the recipe's; yolact_edge's default is traditional
    score_threshold: float = 0.0     # everything Detect keeps counts towards mAP
    max_images: int | None = None    # only the first N images
    workers: int | None = None       # host worker processes; None: one per CPU
    fast_eval: bool = False          # faster-coco-eval, where installed
    pictures: bool = True            # docs/pictures.md, into the run's results folder

    def check(self) -> None:
        if self.nms not in Nms.values():
            raise UsageError(f"unknown NMS {self.nms!r}", hint="use --nms fast or --nms traditional")
        for option, value in (("--max-images", self.max_images), ("--workers", self.workers)):
            if value is not None and value < 1:
                raise UsageError(f"{option} must be at least 1, got {value}", hint=f"drop {option} for the default")

    def workers_for(self, tasks: int) -> int:
        return max(1, min(self.workers or os.cpu_count() or 1, tasks))


@dataclass(frozen=True)
class StreamOptions:
    """How streaming eval runs the model (it reads no run folder), with each default."""

    model: Path | None = None
    backend: str = Backend.AUTO.value
    device: str = "cpu"
    precision: str | None = None
    batch_size: int | None = None
    keyframe_interval: int | None = None  # a video model's on video frames (docs/video.md §6)
    engine: str = Engine.LOCAL.value
    ray: RaySettings | None = None
    run_name: str = STREAM_RUN            # the results folder's name
    skip_bad: bool = False                # evaluate the others when some images cannot be read


def run(ws: Workspace, options: EvalOptions = EvalOptions(), *, outputs: Path | None = None,
        allow_missing: bool = False) -> EvalResult:
    """The outputs of a run folder (`outputs`; the last infer's when None), each image's as
    infer wrote them; `allow_missing` evaluates only the images that have them. Pictures
    (docs/pictures.md) are drawn into the run's results folder unless `options.pictures` is off."""
    options.check()
    started = time.perf_counter()
    if outputs is None:
        outputs = ws.resolve(ws.need(InferRecord, "inference outputs", "yedge infer").run_dir)
    run_dir = Path(outputs)
    if not run_dir.is_dir():
        raise InputError("outputs folder not found", path=run_dir, hint="run `yedge infer` first")
    ids = ws.read_ids()[: options.max_images or None]
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
    workers = options.workers_for(len(tasks))
    origin = record.origin if record else None
    spec = host_spec(ws, layout, weights=options.weights, config=options.config, nms=options.nms,
                     score_threshold=options.score_threshold, threads=max(1, (os.cpu_count() or 1) // workers),
                     outputs_of={str(run_dir): origin}, fix=(
                         f"pass --weights {origin.weights} (the checkpoint it came from), or rerun `yedge infer "
                         f"--run {run_dir.name} --overwrite` with the current model") if origin else "")
    job = EvalJob(str(run_dir), output_dtype, str(annotations_for(ws, options.annotations)), spec)
    coco = load_coco(job.annotations)
    require_images(coco, [image_id for _, image_id in tasks], job.annotations)
    require_label_set(coco, CONFIGS[spec.config].labels, job.annotations)

    with contextlib.ExitStack() as stack:
        evaluation = Evaluation(stack, ws, run_dir.name, coco, CONFIGS[spec.config].labels, STAGES,
                                by_image=False, fast_eval=options.fast_eval, pictures=options.pictures)
        advance = stack.enter_context(progress_bar(len(tasks), f"eval {len(tasks)} images ({layout} layout, "
                                                               f"{options.nms} NMS)"))
        advance(0)
        with contextlib.ExitStack() as pooled:
            results = map(_Worker(job, coco), tasks) if workers == 1 else pooled.enter_context(
                process_pool(workers, _init_worker, (job,))).map(_process, tasks, chunksize=1)
            for (_, image_id), (_, bbox, mask, matches, times) in zip(tasks, results):  # in task order
                evaluation.add(image_id, bbox, mask, matches, times)
                advance(1)
    host_seconds = time.perf_counter() - started
    provenance = {  # what computed the outputs evaluated here: the run folder's own record
        "run": run_dir.name, "backend": record.backend if record else None,
        "device": record.device if record else None, "model": record.model if record else None,
        "model_sha256": record.model_sha256 if record else None,
        "model_weights_sha256": record.weights_sha256 if record else None}
    result = EvalResult(images=len(tasks), layout=layout, nms=options.nms, output_dtype=output_dtype,
                        yolact_ap=evaluation.accumulator.table(),
                        host_ms_per_image=evaluation.totals.ms_per(len(tasks))
                        | {"wall": round(host_seconds / len(tasks) * 1000, 2)}, missing=missing)
    return _finish(ws, evaluation, result, EvalRecord(
        outputs=str(run_dir), inputs_fingerprint=record.inputs_fingerprint if record else None,
        model_weights=record.weights if record else None,
        model_weights_sha256=record.weights_sha256 if record else None, run=run_dir.name),
        annotations=job.annotations, spec=spec, provenance=provenance, outputs=str(run_dir), workers=workers,
        started=started)


def streams(*, images: Path | None, stream: bool, outputs: Path | None, allow_missing: bool, skip_bad: bool,
            precision: str | None, keyframe_interval: int | None = None) -> bool:
    """Whether eval streams (--images or --stream: the model runs too) or reads a run folder,
    refusing the options that belong to the other way."""
    if images is not None or stream:
        if outputs is not None or allow_missing:
            raise UsageError("--outputs and --allow-missing read a run folder; streaming has none",
                             hint="drop them, or drop --images/--stream")
        return True
    if skip_bad:
        raise UsageError("--skip-bad is for streaming eval (prep --skip-bad leaves bad images out of a run folder)",
                         hint="add --images DIR or --stream")
    if precision is not None:
        raise UsageError("--precision is the model's: eval of a run folder reads outputs already computed",
                         hint="add --images DIR or --stream, or pass it to `yedge infer`")
    if keyframe_interval is not None:
        raise UsageError("--keyframe-interval runs a video model on video frames: eval of a run folder "
                         "reads outputs already computed", hint="add --images DIR or --stream")
    return False


def run_streaming(ws: Workspace, images: Path | None, options: EvalOptions = EvalOptions(),
                  stream: StreamOptions = StreamOptions()) -> EvalResult:
    """prep → infer → eval in one pass (one engine, stream.engine): the same images in the same order,
    the same COCO result files and metrics, with no `.bin` inputs or raw outputs on disk. The
    results are written to their JSON files as they come, so memory stays flat. Annotations of
    video frames (`video_id`, `frame_id`) run per video in frame order, which a video model runs
    with its keyframe schedule (docs/video.md §6)."""
    from ..data.coco import image_order, videos_of, warn_size_mismatches
    from ..metrics.results import coco_entries
    from ..metrics.yolact_ap import ground_truth, match_image
    from ..provenance import model_origin
    from ..resolve import choose_backend, model_for
    from ..stream.engine import engine_for, recipe_for
    from ..stream.items import Frames, Item, Unit

    options.check()
    if images is None:
        images = Path(ws.need(PrepRecord, "images to stream", "yedge eval --images DIR --annotations FILE").images)
    if not Path(images).is_dir():
        raise InputError("image folder not found", path=images, hint="pass --images with the val2017 folder")
    started = time.perf_counter()
    if options.annotations is None and ws.load(PrepRecord) is None:
        raise UsageError("streaming eval needs the annotations of the images",
                         hint="pass --annotations FILE (the COCO instances JSON)")
    annotations = Path(annotations_for(ws, options.annotations)).absolute()
    coco = load_coco(annotations)
    ids = image_order(coco)[: options.max_images or None]
    if not ids:
        raise InputError("no annotated images to evaluate", path=annotations, hint="check the annotation file")
    videos = videos_of(coco, ids)
    if videos is not None:  # each video's frames together, in frame order
        ids = [image_id for video in videos for image_id in video]
    backend = choose_backend(stream.backend, stream.model)
    choice = model_for(ws, backend, stream.model, stream.batch_size, stream.precision, stream.device)
    workers = options.workers_for(len(ids))

    # the model read once: its hash and the checkpoint it came from serve the heads check and provenance
    digest = sha256_file(choice.path) if choice.path.is_file() else None
    origin = model_origin(ws, choice.path, digest) if digest else None
    outputs_of = {str(choice.path): origin} if digest else {}

    def host_for(info) -> HostSpec:
        """The host part for the session's layout, its heads checked against the model's
        checkpoint before any image runs."""
        return host_spec(ws, info.layout, weights=options.weights, config=options.config, nms=options.nms,
                         score_threshold=options.score_threshold, threads=1, outputs_of=outputs_of)

    infos = [image_info(coco, i) for i in ids]
    if not any((Path(images) / info.file_name).is_file() for info in infos):
        raise InputError(f"none of the {len(infos)} annotated images is in this folder (the first would be "
                         f"{infos[0].file_name})", path=images,
                         hint=f"pass --images with the folder of the images {annotations.name} describes, "
                              "or the --annotations of this folder")
    folder = Path(images).absolute()
    frame_items = [Item(pos, str(folder / info.file_name), size=(info.width, info.height))
                   for pos, info in enumerate(infos)]
    units: list[Unit] = list(frame_items)
    if videos is not None:  # `ids`, and so the items, are in video order already
        items = iter(frame_items)
        units = [Frames(f"video {coco.imgs[video[0]]['video_id']}",
                        tuple(dataclasses.replace(next(items), frame=rank, rank=rank) for rank in range(len(video))))
                 for video in videos]
    runner = engine_for(ws, stream.engine, stream.ray, backend=backend, device=stream.device, workers=workers)
    with contextlib.ExitStack() as stack:
        advance = stack.enter_context(progress_bar(len(ids), f"eval {len(ids)} images streamed ({options.nms} NMS)"))
        recipe = recipe_for(ws, choice, stream.device, stream.batch_size, stream.keyframe_interval)
        run = stack.enter_context(runner.open(recipe, host_for))
        labels = CONFIGS[run.host.config].labels
        require_label_set(coco, labels, annotations)
        # COCOeval image by image as results come (memory stays flat); faster-coco-eval reads the files
        evaluation = Evaluation(stack, ws, stream.run_name, coco, labels, STREAM_STAGES,
                                by_image=not options.fast_eval, fast_eval=options.fast_eval,
                                pictures=options.pictures)
        predictions = stack.enter_context(contextlib.closing(run.predictions(units)))
        bad: list[dict] = []
        mismatches: list[dict] = []
        keyframes: int | None = None
        for prediction in predictions:
            image_id = ids[prediction.item.index]
            if prediction.error is not None:  # listed, as prep lists them, after the others ran
                bad.append({"position": prediction.item.index, "id": image_id,
                            "file": prediction.item.source, "error": prediction.error})
                advance(1)
                continue
            if prediction.decoded not in (None, (prediction.width, prediction.height)):
                mismatches.append({"id": image_id, "file": Path(prediction.item.source).name,
                                   "annotated": [prediction.width, prediction.height],
                                   "actual": list(prediction.decoded)})
            found = prediction.detections
            assert found is not None
            if prediction.keyframe is not None:
                keyframes = (keyframes or 0) + prediction.keyframe
            with evaluation.totals.time("match"):
                matches = match_image(found, found.rles,  # type: ignore[arg-type]
                                      ground_truth(coco, image_id, prediction.width, prediction.height, labels))
            evaluation.add(image_id, *coco_entries(image_id, found, labels=labels), matches, prediction.times)
            advance(1)
        if bad and not stream.skip_bad:
            listed = "; ".join(f"{b['file']} ({b['error']})" for b in bad[:5])
            more = f" and {len(bad) - 5} more" if len(bad) > 5 else ""
            raise InputError(f"{len(bad)} image(s) could not be read: {listed}{more}", path=images,
                             hint="fix or remove them, or pass --skip-bad to evaluate the others")
        if not evaluation.evaluated:
            raise InputError("none of the images could be read", path=images, hint="check the image folder")
    warn_size_mismatches(mismatches)
    count = len(evaluation.evaluated)
    provenance = {"run": stream.run_name, "backend": backend, "engine": stream.engine,
                  "device": run.device,
                  "model": ws.relative(choice.path),
                  "model_sha256": digest,
                  "model_weights_sha256": origin.weights_sha256 if origin else None}
    result = EvalResult(images=count, layout=run.info.layout, nms=options.nms, output_dtype=run.info.output_dtype,
                        yolact_ap=evaluation.accumulator.table(),
                        host_ms_per_image=evaluation.totals.ms_per(count)
                        | {"wall": round((time.perf_counter() - started) / count * 1000, 2)},
                        streamed=True, bad=bad, size_mismatches=mismatches,
                        videos=len(videos) if videos else 0, keyframes=keyframes,
                        keyframe_interval=None if keyframes is None else stream.keyframe_interval or KEYFRAME_INTERVAL)
    return _finish(ws, evaluation, result, EvalRecord(
        outputs=f"streamed from {images}", run=stream.run_name, streamed_images=str(Path(images).absolute()),
        bad=bad, size_mismatches=mismatches, model_weights=origin.weights if origin else None,
        model_weights_sha256=origin.weights_sha256 if origin else None),
        annotations=str(annotations), spec=run.host, provenance=provenance, outputs=f"streamed from {images}",
        workers=workers, started=started)


class _JsonArray:
    """A JSON array written entry by entry, byte for byte what `json.dumps(list)` writes."""

    def __init__(self, path: Path):
        self._file = open(path, "w", encoding="utf-8")
        self._file.write("[")
        self._first = True

    def extend(self, entries: list[dict]) -> None:
        for entry in entries:
            self._file.write(("" if self._first else ", ") + json.dumps(entry))
            self._first = False

    def close(self) -> None:
        if not self._file.closed:
            self._file.write("]")
            self._file.close()


class Evaluation:
    """What file and streaming eval share, one image at a time: `add` writes the image's COCO
    entries to the result files as they come (byte for byte `json.dumps` of the whole list, under
    temporary names until the stack closes), adds its YOLACT matches, stage times and confusion
    matrix counts and, when `by_image`, runs COCOeval on that image alone; `coco_stats` gives
    COCOeval's figures and the curves the pictures are drawn from."""

    def __init__(self, stack: contextlib.ExitStack, ws: Workspace, run_name: str, coco, labels: LabelSet,
                 stages: tuple[str, ...], *, by_image: bool, fast_eval: bool, pictures: bool):
        from ..metrics.confusion import ConfusionMatrix
        from ..metrics.yolact_ap import APAccumulator

        self.run_results = ws.run_results(run_name)
        self.paths = {"bbox": self.run_results / BBOX_RESULTS, "segm": self.run_results / MASK_RESULTS}
        self._files = [_JsonArray(stack.enter_context(atomic_path(self.paths[kind]))) for kind in ("bbox", "segm")]
        for file in self._files:
            stack.callback(file.close)
        self.accumulator = APAccumulator()
        self.by_image = coco_eval.ImageByImage(coco) if by_image else None
        self.fast_eval = fast_eval
        self.totals = StageTimes(dict.fromkeys([*stages, *(["cocoeval"] if by_image else [])], 0.0))
        self.evaluated: list[int] = []
        self.coco, self.labels = coco, labels
        self.confusion = ConfusionMatrix(sorted(coco.getCatIds()))
        self.instances: dict[int, int] = {}  # non-crowd ground truth per category of the evaluated images
        self.pictures = pictures and plots.available()

    def add(self, image_id: int, bbox: list[dict], mask: list[dict], matches, times: dict[str, float]) -> None:
        self.evaluated.append(image_id)
        for file, entries in zip(self._files, (bbox, mask)):
            file.extend(entries)
        if self.by_image is not None:
            with self.totals.time("cocoeval"):
                self.by_image.add(image_id, {"bbox": bbox, "segm": mask})
        self.accumulator.add(matches)
        truths = self.coco.imgToAnns.get(image_id, [])
        for truth in truths:
            if not truth.get("iscrowd", 0):
                self.instances[truth["category_id"]] = self.instances.get(truth["category_id"], 0) + 1
        self.confusion.add(truths, bbox)
        self.totals.add(times)

    def coco_stats(self, annotations: str, curves: dict[str, Curves]) -> dict:
        """COCOeval's figures, and its curves into `curves`: gathered image by image, else over
        the written files."""
        if self.by_image is not None:
            return self.by_image.stats(curves)
        return coco_eval.evaluate(Path(annotations), self.paths, self.evaluated, fast=self.fast_eval, curves=curves)

    def draw(self, curves: dict[str, Curves], subject: str) -> tuple[list[dict], list[Path]]:
        """The per-class table; the curves' arrays and the confusion matrix beside the results
        (CURVES_DATA), and the pictures (captioned with `subject`) unless they are off."""
        names = dict(zip(self.labels.category_ids, self.labels.names))
        rows = per_class_table(curves, names, self.instances)
        arrays: dict[str, Any] = {"confusion": self.confusion.counts,
                                         "confusion_category_ids": np.asarray(self.confusion.category_ids)}
        arrays |= {f"{t}_precision": c.precision for t, c in curves.items()}
        if curves:  # the thresholds and classes are the same for both IoU types
            first = next(iter(curves.values()))
            arrays |= {"recall_thresholds": first.recall_thresholds, "iou_thresholds": first.iou_thresholds,
                       "category_ids": np.asarray(first.category_ids)}
        with atomic_path(self.run_results / CURVES_DATA) as tmp, open(tmp, "wb") as file:
            np.savez_compressed(file, **arrays)
        drawn = plots.eval_pictures(self.run_results, curves, rows, self.confusion, names, self.instances,
                                    subject) if self.pictures else []
        plots.remove_stale(self.run_results, drawn)
        return rows, drawn


def _finish(ws: Workspace, evaluation: Evaluation, result: EvalResult, record: EvalRecord, *, annotations: str,
            spec: HostSpec, provenance: dict, outputs: str, workers: int, started: float) -> EvalResult:
    """COCOeval's figures, the pictures, metrics.json, the latest copies, the manifest."""
    curves: dict[str, Curves] = {}
    coco = evaluation.coco_stats(annotations, curves)
    results_paths, run_results, evaluated_ids = dict(evaluation.paths), evaluation.run_results, evaluation.evaluated
    result.coco = coco
    result.per_class, drawn = evaluation.draw(curves, f"eval run {evaluation.run_results.name}: "
                                                      f"{provenance.get('model')}, {result.images} images")
    result.pictures = [ws.relative(path) for path in drawn]
    result.seconds = round(time.perf_counter() - started, 2)
    result.results_dir = str(run_results)
    metrics = {**result.to_dict(), "provenance": {
        **provenance, "weights": spec.weights, "config": spec.config, "outputs": outputs, "annotations": annotations,
        "image_ids": evaluated_ids, "score_threshold": spec.score_threshold, "workers": workers}}
    results_paths["metrics"] = run_results / METRICS
    atomic_write_text(results_paths["metrics"], json.dumps(metrics, indent=2) + "\n")
    for path in results_paths.values():  # the latest evaluation also where docs/commands.md says
        atomic_copy(path, ws.results_dir / path.name)
    record.annotations, record.weights, record.nms = annotations, spec.weights, spec.nms
    record.score_threshold, record.images, record.layout, record.config = \
        spec.score_threshold, result.images, result.layout, spec.config
    record.bbox, record.segm = ws.relative(results_paths["bbox"]), ws.relative(results_paths["segm"])
    record.metrics, record.bbox_sha256 = ws.relative(results_paths["metrics"]), sha256_file(results_paths["bbox"])
    record.summary = {"box_all": result.yolact_ap["box"]["all"], "mask_all": result.yolact_ap["mask"]["all"],
                      "coco_bbox_AP": coco["bbox"]["stats"][0], "coco_segm_AP": coco["segm"]["stats"][0]}
    ws.save(record)
    return result


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
