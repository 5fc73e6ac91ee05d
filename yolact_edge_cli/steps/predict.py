"""`yedge predict`: YolactEdge on people's own images and videos, streamed by an engine (stream.engine):
each image drawn in its own format, each video written back annotated with its frame size, rate
and count, and one `predictions.jsonl` line per image or frame. Nothing half-written: every file
goes through a temporary name; a bad source is listed with its reason and the others still run."""
from __future__ import annotations

import contextlib
import glob
import json
import os
import re
import time
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from ..backends import ModelInfo
from ..choices import Backend, Engine, Layout, Precision
from ..console import progress_bar
from ..data.sources import VIDEO_SUFFIXES, Video, expand, is_video, open_video, output_name
from ..draw import DrawStyle, draw_detections
from ..errors import InputError, UsageError
from ..host import HostSpec
from ..metrics.results import kept_detections
from ..model.config import COCO, CONFIGS, RESNET50, SHOW_SCORE_THRESHOLD, LabelSet
from ..precision import check as check_precision
from ..records import ExportRecord
from ..resolve import ModelChoice, choose_backend, host_spec, model_for, model_outputs
from ..stream.engine import engine_for, recipe_for
from ..stream.items import Item, Prediction, VideoSource
from ..track import VideoTracks
from ..workspace import Workspace, atomic_path, remove_stale_temp

if TYPE_CHECKING:
    from ..stream.ray_cluster import RaySettings

PREDICTIONS = "predictions.jsonl"
# An annotated video is written as .<name>.tmp.<suffix> (OpenCV picks the container by the suffix).
VIDEO_TEMP = ".tmp"


@dataclass
class PredictResult:
    output: str
    model: str
    backend: str
    engine: str = Engine.LOCAL.value
    precision: str = Precision.FP32.value
    sources: int = 0
    images: int = 0
    frames: int = 0
    keyframes: int | None = None  # a video model's frames that ran as keyframes
    tracks: int | None = None  # --track: identities given, over all videos
    detections: int = 0
    seconds: float = 0.0
    fps: float = 0.0
    predictions: str | None = None
    written: list[str] = field(default_factory=list)
    failed: list[dict] = field(default_factory=list)  # {"source": …, "reason": …}
    skipped: list[dict] = field(default_factory=list)  # a folder's files that are no image or video

    def to_dict(self) -> dict:
        return asdict(self)

    def failure(self, skip_bad: bool) -> InputError | None:
        """The run's error, if any: sources that could not be run, forgiven by --skip-bad (a run
        where none could raises instead, leaving no file)."""
        if not self.failed or skip_bad:
            return None
        return InputError(f"{len(self.failed)} of {self.sources} source(s) could not be run (listed above)",
                          hint="fix or remove them, or pass --skip-bad")


def class_indices(names: Sequence[str] | None, labels: LabelSet = COCO) -> set[int] | None:
    """--classes person,car (or class indices, 0 person, as yolo's) → their class indices in the
    model's label set; an unknown name or index is a usage error."""
    if not names:
        return None
    lookup = {name.lower(): i for i, name in enumerate(labels.names)}
    lookup |= {str(i): i for i in range(len(labels.names))}
    hint = (f"names or indices 0–{len(labels.names) - 1}, e.g. --classes {','.join(labels.names[:2])},2 "
            f"(all {len(labels.names)}: {labels.listed_in})")
    beyond = [n for n in names if n.strip().isdigit() and n.strip() not in lookup]
    if beyond:
        raise UsageError(f"class index {', '.join(beyond)} is out of range 0–{len(labels.names) - 1} "
                         f"(the {labels.dataset} classes)", hint=hint)
    unknown = [n for n in names if n.strip().lower() not in lookup]
    if unknown:
        raise UsageError(f"unknown class name(s): {', '.join(unknown)} (not among the {labels.dataset} classes)",
                         hint=hint)
    return {lookup[n.strip().lower()] for n in names}


@dataclass(frozen=True)
class PredictOptions:
    """What `yedge predict` takes besides its sources, with its defaults (the CLI reads them here)."""

    # the model, and what runs it
    model: Path | None = None
    weights: Path | None = None  # a checkpoint run in PyTorch (its heads too) instead of the export
    backend: str = Backend.AUTO.value
    device: str = "cpu"
    precision: str | None = None
    batch_size: int | None = None
    keyframe_interval: int | None = None  # a video model's (docs/video.md §5)
    # which detections are kept
    score_threshold: float = SHOW_SCORE_THRESHOLD
    top_k: int = 100
    classes: tuple[str, ...] | None = None  # names or indices of the model's label set
    iou: float | None = None  # the host NMS's IoU threshold (None: the model's)
    # the sources: `sequence` takes each (a folder of frames, or a pattern) as one video;
    # `vid_stride` runs every N-th frame of each video (frame numbers and timestamps stay the
    # source's, a video model's schedule counts the frames that run, the annotated video plays at
    # the source's rate / N); `track` gives each video's detections an identity (docs/video.md §8)
    recursive: bool = False
    sequence: bool = False
    vid_stride: int = 1
    track: bool = False
    # what is written: drawn images and videos, predictions.jsonl, YOLO segmentation text and
    # one PNG per instance
    output: Path | None = None
    name: str | None = None
    exist_ok: bool = False
    save_images: bool = True
    save_video: bool = True
    save_json: bool = True
    save_txt: bool = False
    save_masks: bool = False
    style: DrawStyle = DrawStyle()
    # the engine
    workers: int | None = None
    engine: str = Engine.LOCAL.value
    ray: RaySettings | None = None

    def check(self) -> None:
        """Values no run can take, refused before anything opens."""
        if self.vid_stride < 1:
            raise UsageError(f"--vid-stride {self.vid_stride}: every N-th frame needs N ≥ 1",
                             hint="e.g. --vid-stride 2")
        if self.iou is not None and not 0 < self.iou <= 1:
            raise UsageError(f"--iou {self.iou} is not an IoU threshold", hint="pass a value in (0, 1], e.g. --iou 0.5")
        if self.top_k > RESNET50.max_num_detections:
            raise UsageError(f"--top-k {self.top_k}: Detect keeps at most {RESNET50.max_num_detections} detections "
                             "per image", hint=f"pass --top-k {RESNET50.max_num_detections} or fewer")
        if self.top_k < 1 or (self.batch_size is not None and self.batch_size < 1):
            raise UsageError("--top-k and --batch-size must be at least 1", hint="e.g. --top-k 100 --batch-size 1")


def run(ws: Workspace, sources: list[str], options: PredictOptions = PredictOptions()) -> PredictResult:
    """The sources run as `options` say (PredictOptions), drawn and written as they come."""
    options.check()
    backend = options.backend
    if options.track:
        from ..track import check_available

        check_available()
    if options.weights is not None and options.model is None:  # a checkpoint runs in PyTorch, its heads too
        backend = choose_backend(backend, options.weights)
        check_precision(backend, options.device, options.precision or Precision.FP32.value)
        choice = ModelChoice(Path(options.weights), ExportRecord(layout=Layout.HEAD.value, config="auto"),
                             backend=backend, precision=options.precision or Precision.FP32.value)
    else:
        backend = choose_backend(backend, options.model)
        choice = model_for(ws, backend, options.model, options.batch_size, options.precision, options.device)
    if options.weights is None and choice.export.config in CONFIGS:  # said before anything starts
        class_indices(options.classes, CONFIGS[choice.export.config].labels)
    found = _sequences(sources) if options.sequence else expand(sources, options.recursive)
    if not found.found and found.failed:
        source, reason = found.failed[0]
        raise InputError(f"nothing to run: {source}: {reason}", hint="pass image or video files, folders or globs")
    dest = _destination(ws, sources, options.output, options.name, options.exist_ok)
    _refuse_drawing_over_sources(dest, found.found, options.save_images, options.save_video)
    result = PredictResult(output=str(dest), model=str(choice.path), backend=backend, engine=options.engine,
                           precision=choice.precision,
                           sources=len(found.found) + len(found.failed),
                           failed=[{"source": s, "reason": r} for s, r in found.failed],
                           skipped=[{"source": s, "reason": r} for s, r in found.skipped])
    # each video opened here for its frame rate, size and count (the bar's length, the writer's
    # settings); its frames are read where the engine reads (stream.items.frames_of)
    videos: dict[str, Video] = {}
    broken: dict[str, str] = {}  # video → why it could not be opened or read to its end
    as_video = (lambda source: True) if options.sequence else is_video
    for source in filter(as_video, found.found):
        video = open_video(source, options.sequence)
        if isinstance(video, str):
            broken[source] = video
        else:
            video.release()
            videos[source] = video
    # what the engine reads of each (every --vid-stride-th frame), made once: the units and the bar's length
    runs = {source: VideoSource(source, video.frame_count, options.sequence, options.vid_stride)
            for source, video in videos.items()}

    def units() -> Iterator[Item | VideoSource]:
        for source in found.found:
            if not as_video(source):
                yield Item(0, source)
            elif source in runs:
                yield runs[source]

    def host_for(info: ModelInfo) -> HostSpec:
        if options.weights is not None and options.model is not None and info.layout != Layout.FPN.value:
            raise UsageError(f"--weights with --model names the host-side heads' checkpoint, but {options.model} "
                             f"holds its heads ({info.layout} layout)", hint="drop --weights")
        return host_spec(ws, info.layout, weights=Path(options.weights) if options.weights else None,
                         config=_config_of(choice, options.weights), score_threshold=options.score_threshold, threads=1,
                         outputs_of=model_outputs(ws, choice.path if options.model is not None else None),
                         iou=options.iou)

    workers = max(1, min(options.workers or (os.cpu_count() or 1), 8))
    videos_given = sum(1 for s in found.found if as_video(s))
    images_given = len(found.found) - videos_given
    runner = engine_for(ws, options.engine, options.ray, backend=backend, device=options.device, workers=workers,
                        # decoded pictures come back only to be drawn
                        keep_images=(options.save_images and images_given > 0)
                        or (options.save_video and videos_given > 0))
    writer = _Writer(dest, options.save_images, options.save_video, result, options.style, options.vid_stride)
    labelled = _Labels(dest, options.save_txt, options.save_masks, result)
    total = images_given + sum(video.runs or 0 for video in runs.values())
    started = time.perf_counter()
    created = _missing_folders(dest)
    _Writer.remove_leftovers(dest)
    with contextlib.ExitStack() as stack:
        stack.callback(_remove_if_empty, created)
        stack.callback(writer.abandon)
        jsonl = None
        if options.save_json:
            jsonl = stack.enter_context(open(stack.enter_context(atomic_path(dest / PREDICTIONS)), "w",
                                             encoding="utf-8"))
        advance = stack.enter_context(progress_bar(total, f"predict ({backend}, {choice.path.name})"))
        run = stack.enter_context(runner.open(recipe_for(ws, choice, options.device, options.batch_size,
                                                         options.keyframe_interval),
                                              host_for))
        labels = CONFIGS[run.host.config].labels
        wanted = class_indices(options.classes, labels)
        predictions = stack.enter_context(contextlib.closing(run.predictions(units())))
        tracking = _Tracking() if options.track else None
        for prediction in predictions:
            writer.finish_videos_before(prediction.item.source, broken)
            if prediction.error is not None:
                if prediction.item.source in videos:
                    broken[prediction.item.source] = prediction.error
                else:
                    result.failed.append({"source": prediction.item.source, "reason": prediction.error})
                    advance(1)
                continue
            fps = videos[prediction.item.source].fps if prediction.item.source in videos else None
            line = _line(prediction, wanted, options.top_k, labels, fps)
            result.detections += len(line["detections"])
            if prediction.item.frame is None:
                result.images += 1
            else:
                result.frames += 1
            if prediction.keyframe is not None:
                result.keyframes = (result.keyframes or 0) + prediction.keyframe
            if tracking is not None and fps is not None:
                result.tracks = tracking.add(prediction.item.source, fps / options.vid_stride, line["detections"])
            line["drawn"] = writer.write(prediction, line, videos)
            labelled.write(prediction, line, labels)
            if jsonl is not None:
                jsonl.write(json.dumps(line) + "\n")
            advance(1)
        writer.finish_videos_before(None, broken)
        if result.images + result.frames == 0:  # nothing ran: no file is kept (the stack removes them)
            failures = result.failed + [{"source": s, "reason": r} for s, r in broken.items()]
            listed = "; ".join(f"{f['source']} ({f['reason']})" for f in failures[:5])
            more = f" and {len(failures) - 5} more" if len(failures) > 5 else ""
            raise InputError(f"none of the {result.sources} source(s) could be run: {listed}{more}",
                             hint="pass readable images or videos")
    result.predictions = str(dest / PREDICTIONS) if options.save_json else None
    result.failed += [{"source": source, "reason": reason} for source, reason in broken.items()]
    result.seconds = round(time.perf_counter() - started, 2)
    result.fps = round((result.images + result.frames) / result.seconds, 2) if result.seconds else 0.0
    return result


def _destination(ws: Workspace, sources: list[str], output: Path | None, name: str | None,
                 exist_ok: bool) -> Path:
    """-o DIR, else <workspace>/predict/<name>: a given folder that holds files is refused unless
    exist_ok (a run's files would mix with another's); the default name is numbered instead."""
    if output is not None and name is not None:
        raise UsageError("-o and --name both say where to write", hint="pass one of them")
    if name is not None and (not name.strip() or Path(name).name != name or name in (".", "..")):
        raise UsageError(f"--name {name!r} is not a plain folder name", hint="e.g. --name street, or -o DIR for a path")
    if output is not None or name is not None:
        dest = Path(output) if output is not None else ws.predict_dir / str(name)
        if dest.is_dir() and any(dest.iterdir()) and not exist_ok:
            raise UsageError("this output folder already holds files", path=dest,
                             hint="pass --exist-ok to write into it, or another -o/--name")
        return dest
    base = _default_name(sources)
    dest, n = ws.predict_dir / base, 1
    while dest.is_dir() and any(dest.iterdir()):
        n += 1
        dest = ws.predict_dir / f"{base}_{n}"
    return dest


def _refuse_drawing_over_sources(dest: Path, sources: list[str], save_images: bool, save_video: bool) -> None:
    """Drawn files are named after their sources: in a source's own folder they would replace it,
    and the next run would take the drawings for photos."""
    if not dest.is_dir():
        return
    folder = dest.resolve()
    for source in sources:
        path = Path(source)
        drawn = save_video if is_video(source) else save_images
        if drawn and "://" not in source and not source.isdigit() and path.resolve().parent == folder:
            raise UsageError(f"{path.name} is a source in the output folder: its drawn copy would replace it",
                             path=dest, hint="pass another -o/--name (or --no-save-images --no-save-video)")


def _default_name(sources: list[str]) -> str:
    """The first source's name (its folder's for a glob), safe as a folder name. A file whose
    name looks like a glob ("[draft] x.png") is a file, as `expand` takes it."""
    first = Path(sources[0].rstrip("/")) if sources else Path("predict")
    if glob.has_magic(str(first)) and not first.exists():
        first = first.parent
    name = first.stem if first.suffix else first.name
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("._") or "predict"


def _config_of(choice: ModelChoice, weights: Path | None) -> str | None:
    """The config the host part builds priors (and fpn heads) for: the checkpoint's own when
    --weights names one, else export's."""
    if weights is None:
        return choice.export.config or None
    from ..model.checkpoint import match_config, normalize_keys, read_state_dict

    return match_config(normalize_keys(read_state_dict(Path(weights))), "auto", Path(weights)).name


def _line(prediction: Prediction, wanted: set[int] | None, top_k: int, labels: LabelSet,
          fps: float | None) -> dict:
    """One predictions.jsonl line: the image or frame (a frame's timestamp in seconds, and for a
    video model whether it ran as a keyframe), and its detections (the label set's category ids,
    pixel boxes x1,y1,x2,y2, masks as COCO RLE) — the same ones eval writes for the image."""
    found = prediction.detections
    detections: list[dict] = []
    if found is not None:
        for i in kept_detections(found.boxes):
            if wanted is not None and int(found.classes[i]) not in wanted:
                continue
            if len(detections) == top_k:
                break
            cls = int(found.classes[i])
            detections.append({"class": labels.names[cls], "category_id": labels.category_ids[cls],
                               "score": float(found.scores[i]), "box": [int(v) for v in found.boxes[i]],
                               "mask": found.rles[i]})
    line: dict = {"source": prediction.item.source, "frame": prediction.item.frame,
                  "width": prediction.width, "height": prediction.height, "detections": detections}
    if prediction.item.frame is not None and fps:
        line["timestamp"] = round(prediction.item.frame / fps, 6)
    if prediction.keyframe is not None:
        line["keyframe"] = prediction.keyframe
    return line


def _sequences(sources: list[str]):
    """--sequence: each argument one video of image files (data.sources.sequence_files)."""
    from ..data.sources import Sources, sequence_files

    found = Sources()
    for source in sources:
        if sequence_files(source):
            found.found.append(source)
        else:
            found.failed.append((source, "no image files in this sequence (a folder of frames, or a "
                                         "pattern matching them)"))
    return found


def _missing_folders(dest: Path) -> list[Path]:
    """`dest` and those of its parents that do not exist yet, deepest first."""
    missing = []
    while not dest.exists() and dest != dest.parent:
        missing.append(dest)
        dest = dest.parent
    return missing


def _remove_if_empty(folders: list[Path]) -> None:
    """The folders this run created and left empty (it failed before writing) go again."""
    for folder in folders:
        if folder.is_dir() and not any(folder.iterdir()):
            folder.rmdir()


class _Tracking:
    """--track: one tracker per video, fed its frames in the order they come (a video's frames
    come together, in order); each detection gets its `track_id`."""

    def __init__(self):
        self.source: str | None = None
        self.tracks: VideoTracks | None = None
        self.identities: set[tuple[str, int]] = set()

    def add(self, source: str, fps: float, detections: list[dict]) -> int:
        """One frame's detections tracked; the identities given so far, over all videos."""
        if self.tracks is None or self.source != source:
            self.source, self.tracks = source, VideoTracks(fps)
        for detection, track_id in zip(detections, self.tracks.update(detections)):
            detection["track_id"] = track_id
            if track_id is not None:
                self.identities.add((source, track_id))
        return len(self.identities)


class _Labels:
    """--save-txt: `labels/<name>.txt`, one line per detection in YOLO's segmentation format
    (class index, then the polygon of its mask's largest outline, x y normalised by the image's
    width and height); --save-masks: `masks/<name>_<k>.png`, one 0/255 PNG per detection. `name`
    is the source's, with `_<frame>` for a video's frame."""

    def __init__(self, dest: Path, save_txt: bool, save_masks: bool, result: PredictResult):
        self.dest, self.save_txt, self.save_masks, self.result = dest, save_txt, save_masks, result
        self.stems: dict[str, str] = {}

    def _name(self, prediction: Prediction) -> str:
        source = prediction.item.source
        if source not in self.stems:
            stem, n = output_name(source)[0], 1
            while (unique := stem if n == 1 else f"{stem}_{n}") in self.stems.values():
                n += 1
            self.stems[source] = unique
        frame = prediction.item.frame
        return self.stems[source] if frame is None else f"{self.stems[source]}_{frame:06d}"

    def write(self, prediction: Prediction, line: dict, labels: LabelSet) -> None:
        import cv2

        from ..draw import decode_rle

        if not (self.save_txt or self.save_masks):
            return
        name, rows = self._name(prediction), []
        for k, detection in enumerate(line["detections"]):
            mask = decode_rle(detection["mask"])
            if self.save_masks:
                target = self.dest / "masks" / f"{name}_{k}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                with atomic_path(target) as tmp:
                    tmp.write_bytes(cv2.imencode(".png", mask * 255)[1].tobytes())
                self.result.written.append(str(target))
            contours, _ = cv2.findContours(mask, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
            if contours:
                points = max(contours, key=cv2.contourArea).reshape(-1, 2) / [mask.shape[1], mask.shape[0]]
                index = labels.category_ids.index(detection["category_id"])
                rows.append(" ".join([str(index), *(f"{v:.6f}" for v in points.reshape(-1))]))
        if self.save_txt:
            target = self.dest / "labels" / f"{name}.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            with atomic_path(target) as tmp:
                tmp.write_text("".join(row + "\n" for row in rows))
            self.result.written.append(str(target))


class _Writer:
    """Drawn images (in their own format) and annotated videos (through a temporary file each,
    renamed when the video's last frame is written)."""

    def __init__(self, dest: Path, save_images: bool, save_video: bool, result: PredictResult,
                 style: DrawStyle, vid_stride: int):
        self.dest, self.save_images, self.save_video, self.result = dest, save_images, save_video, result
        self.style, self.vid_stride = style, vid_stride
        self.open: dict[str, tuple[object, Path, Path]] = {}  # source → (VideoWriter, temp, final)
        self.names: set[str] = set()

    def _target(self, source: str, suffix: str) -> Path:
        stem, _ = output_name(source)
        name, n = f"{stem}{suffix}", 1
        while name in self.names:
            n += 1
            name = f"{stem}_{n}{suffix}"
        self.names.add(name)
        return self.dest / name

    def write(self, prediction: Prediction, line: dict, videos: dict[str, Video]) -> str | None:
        """Draw the image or frame; the name of the file it goes to (None when not drawn)."""
        import cv2

        if prediction.image is None:
            return None
        is_frame = prediction.item.frame is not None
        if (is_frame and not self.save_video) or (not is_frame and not self.save_images):
            return None
        picture = draw_detections(prediction.image, line["detections"], self.style)
        source = prediction.item.source
        if not is_frame:
            suffix = output_name(source)[1]
            try:  # the source's own format where OpenCV can write it, else PNG
                ok, data = cv2.imencode(suffix, picture)
            except cv2.error:
                ok = False
            if not ok:
                suffix, (ok, data) = ".png", cv2.imencode(".png", picture)
            target = self._target(source, suffix)
            with atomic_path(target) as tmp:
                tmp.write_bytes(data.tobytes())
            self.result.written.append(str(target))
            return target.name
        if source not in self.open:
            video = videos[source]
            suffix = output_name(source)[1]
            target = self._target(source, suffix if suffix in VIDEO_SUFFIXES else ".mp4")
            temp = target.with_name(f".{target.stem}{VIDEO_TEMP}{target.suffix}")
            fourcc = cv2.VideoWriter.fourcc(*("MJPG" if target.suffix == ".avi" else "mp4v"))
            self.open[source] = (cv2.VideoWriter(str(temp), fourcc, video.fps / self.vid_stride,
                                                 (prediction.width, prediction.height)), temp, target)
        self.open[source][0].write(picture)  # type: ignore[attr-defined]
        return self.open[source][2].name

    @staticmethod
    def remove_leftovers(dest: Path) -> None:
        """What a killed run (kill -9) left in the folder: videos being written, and the temporary
        files of drawn images and predictions.jsonl."""
        remove_stale_temp(dest)
        if dest.is_dir():
            for stale in dest.glob(f".*{VIDEO_TEMP}.*"):
                stale.unlink(missing_ok=True)

    def abandon(self) -> None:
        """After a failure or Ctrl-C: the videos not finished are removed, not left half-written."""
        for writer, temp, _ in self.open.values():
            writer.release()  # type: ignore[attr-defined]
            temp.unlink(missing_ok=True)
        self.open.clear()

    def finish_videos_before(self, source: str | None, broken: dict[str, str]) -> None:
        """Close every open video other than `source` (all with None): renamed into place when
        it was read to its end, removed when it stopped early."""
        for other in [s for s in self.open if s != source]:
            writer, temp, target = self.open.pop(other)
            writer.release()  # type: ignore[attr-defined]
            if other in broken:
                temp.unlink(missing_ok=True)
                continue
            os.replace(temp, target)
            self.result.written.append(str(target))

