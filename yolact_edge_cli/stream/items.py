"""What goes into an engine (images, video frames) and what comes out of it (a Prediction per
item, in source order)."""
from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

import numpy as np

from ..backends.base import RunTimes
from ..metrics.results import Detections


@dataclass(frozen=True)
class Item:
    """One image file, or one frame of a video (its pixels already decoded by the reader)."""

    index: int                       # position in the stream
    source: str
    frame: int | None = None         # frame number in a video
    pixels: np.ndarray | None = None  # BGR frame of a video; image files are decoded in a worker
    size: tuple[int, int] | None = None  # (width, height) to give results at, when not the image's own
    error: str | None = None         # why the source gave no (more) pictures: a video that stopped early
    unit: int = 0                    # position of its source (an image, a video) in the stream
    # a video frame's position among its video's frames that run (with --vid-stride not its
    # frame number): the keyframe schedule counts these
    rank: int | None = None
    prepared: bool = False  # `source` holds prep's tensor (.bin/.npy), read as it is (infer)


@dataclass(frozen=True)
class VideoSource:
    """A video (file, camera or stream) read frame by frame where the engine reads: in this
    process for the local engine, in a Ray task for --engine ray. `expected`: its frame count,
    when the container says, to tell a video that stops early."""

    source: str
    expected: int | None = None
    sequence: bool = False  # a folder or pattern of image files (data.sources.open_sequence)
    stride: int = 1  # every `stride`-th frame runs (predict --vid-stride)

    @property
    def runs(self) -> int | None:
        """How many of its frames run, when its frame count is known."""
        return None if self.expected is None else -(-self.expected // self.stride)


@dataclass(frozen=True)
class Frames:
    """Items that run in order on one replica, as one source: a video given as its frames' image
    files (eval on per-frame annotations), each decoded where images are; or one batch of
    prepared samples (infer: each its own image, `rank` None), so the engine batches them as
    ais_bench groups them (data.binio.group)."""

    source: str                # what names the video (its id) or the batch
    items: tuple[Item, ...]    # its frames (absolute image paths, `frame` their position) or samples


def frames_of(video: VideoSource) -> Iterator[Item]:
    """Its frames as items (index 0: the stream numbers them), then one item carrying the error
    when it could not be opened again or stopped before its frame count."""
    from ..data.sources import open_video

    opened = open_video(video.source, video.sequence)
    if isinstance(opened, str):
        yield Item(0, video.source, error=opened)
        return
    rank = 0
    for number, pixels in opened.frames(video.stride):
        yield Item(0, video.source, number, pixels, rank=rank)
        rank += 1
    if video.runs is not None and rank < video.runs:
        yield Item(0, video.source, error=f"stopped after {(rank - 1) * video.stride + 1 if rank else 0} "
                                          f"of its {video.expected} frames")


Unit = Item | VideoSource | Frames  # what an engine is given: one image, or one video


def items_of(unit: Unit) -> Iterator[Item]:
    """An image as it is, a video as its frames."""
    if isinstance(unit, Frames):
        return iter(unit.items)
    return frames_of(unit) if isinstance(unit, VideoSource) else iter((unit,))


def numbered(units: Iterable[Unit]) -> Iterator[Item]:
    """Images as they are and videos as their frames, numbered in stream order, each carrying
    the position of its source."""
    index = 0
    for position, unit in enumerate(units):
        for item in items_of(unit):
            yield dataclasses.replace(item, index=index, unit=position)
            index += 1


@dataclass
class Prediction:
    """What comes out of an engine for one item, in source order."""

    item: Item
    width: int = 0
    height: int = 0
    detections: Detections | None = None
    image: np.ndarray | None = None   # the decoded BGR image, when asked for (to draw on)
    error: str | None = None          # why this item could not be run (unreadable image …)
    decoded: tuple[int, int] | None = None  # the decoded image's (width, height)
    # seconds each stage spent on it: decode (+ preprocess), inference (its share of the batch),
    # and the host's (heads, detect, masks, json)
    times: dict[str, float] = field(default_factory=dict)
    replica: int = 0                  # which of the engine's replicas ran it
    keyframe: bool | None = None      # a video model's: whether it ran as a keyframe (docs/video.md)
    outputs: list[np.ndarray] | None = None  # the model's own outputs, where the run has no host part (infer)
    batch_times: RunTimes | None = None  # on the first item of each batch: that batch's run (infer's summary)
