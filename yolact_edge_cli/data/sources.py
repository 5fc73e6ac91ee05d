"""What `yedge predict` runs on: image files, folders, globs and videos, expanded into images
and videos in a stable order, each bad source kept with the reason instead of stopping the rest."""
from __future__ import annotations

import glob
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np

# What cv2.imread decodes (the formats of OpenCV's image codecs) and what VideoCapture opens.
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".tif", ".tiff", ".webp",
                  ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras", ".jp2", ".exr", ".hdr", ".pic")
VIDEO_SUFFIXES = (".mp4", ".avi", ".mov", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".wmv", ".flv", ".3gp")


@dataclass
class Sources:
    found: list[str] = field(default_factory=list)  # image and video files, cameras ("0"), stream URLs
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, why)
    skipped: list[tuple[str, str]] = field(default_factory=list)  # a folder's other files (file, why)


def is_video(source: str) -> bool:
    return source.isdigit() or "://" in source or Path(source).suffix.lower() in VIDEO_SUFFIXES


def output_name(source: str) -> tuple[str, str]:
    """(stem, suffix) to name what is drawn from a source: a camera's `camera_0`, a URL's last
    path component (`rtsp://cam/live` → `live`), a file's own; always a plain file name."""
    if source.isdigit():
        return f"camera_{source}", ""
    path = Path(urlsplit(source).path) if "://" in source else Path(source)
    stem = re.sub(r"[^\w.-]+", "_", path.stem).strip("._") or "stream"
    return stem, path.suffix.lower()


def expand(arguments: list[str], recursive: bool = False) -> Sources:
    """Files as given; a folder's images and videos in name order (its sub-folders too with
    `recursive`); a glob's matches in name order; a digit is a camera, `scheme://…` a stream."""
    found = Sources()
    seen: set[str] = set()

    def add(path: Path) -> None:
        key = str(path.resolve())
        if key in seen:
            return
        seen.add(key)
        suffix = path.suffix.lower()
        if suffix in VIDEO_SUFFIXES + IMAGE_SUFFIXES:
            found.found.append(str(path))
        else:
            found.failed.append((str(path), f"not an image or video file ({suffix or 'no suffix'})"))

    for argument in arguments:
        if argument.isdigit() or "://" in argument:
            found.found.append(argument)
            continue
        path = Path(argument)
        if path.is_dir():
            pattern = "**/*" if recursive else "*"
            files = sorted(p for p in path.glob(pattern) if p.is_file())
            members = [p for p in files if p.suffix.lower() in IMAGE_SUFFIXES + VIDEO_SUFFIXES]
            found.skipped += [(str(p), f"not an image or video file OpenCV reads ({p.suffix.lower() or 'no suffix'})")
                              for p in files if p not in members and not p.name.startswith(".")]
            if not members:
                found.failed.append((argument, "no images or videos in this folder"
                                     + ("" if recursive else " (--recursive for its sub-folders)")))
            for member in members:
                add(member)
        elif path.is_file():
            add(path)
        elif glob.has_magic(argument):
            matches = sorted(Path(p) for p in glob.glob(argument, recursive=recursive) if Path(p).is_file())
            if not matches:
                found.failed.append((argument, "the pattern matches no file"))
            for match in matches:
                add(match)
        else:
            found.failed.append((argument, "no such file or folder"))
    return found


@dataclass
class Video:
    """An opened video: its frame rate, size and (when the container says) frame count."""

    source: str
    fps: float
    width: int
    height: int
    frame_count: int | None
    _capture: object = None

    def release(self) -> None:
        self._capture.release()  # type: ignore[attr-defined]

    def frames(self, stride: int = 1) -> Iterator[tuple[int, np.ndarray]]:
        """(frame number, BGR frame) of every `stride`-th frame from the first; the frames
        between are grabbed, not decoded."""
        capture = self._capture
        try:
            number = 0
            while True:
                ok, frame = capture.read()  # type: ignore[attr-defined]
                if not ok:
                    return
                yield number, frame
                for _ in range(stride - 1):
                    if not capture.grab():  # type: ignore[attr-defined]
                        return
                number += stride
        finally:
            capture.release()  # type: ignore[attr-defined]


# The frame rate a sequence of image files is given (its timestamps, the video drawn from it):
# OpenCV's own default for a video that does not say.
SEQUENCE_FPS = 30.0


def sequence_files(source: str) -> list[Path]:
    """The frames of an image sequence (predict --sequence): a folder's image files, or a glob's
    matches, in name order."""
    path = Path(source)
    candidates = sorted(path.iterdir()) if path.is_dir() else sorted(Path(p) for p in glob.glob(source))
    return [p for p in candidates if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES]


class _FileFrames:
    """A sequence's files read one by one, as cv2.VideoCapture reads frames."""

    def __init__(self, files: list[Path]):
        self.files = iter(files)

    def read(self) -> tuple[bool, np.ndarray | None]:
        import cv2

        path = next(self.files, None)
        frame = None if path is None else cv2.imread(str(path), cv2.IMREAD_COLOR)
        return frame is not None, frame

    def grab(self) -> bool:
        return next(self.files, None) is not None

    def release(self) -> None:
        self.files = iter(())


def open_sequence(source: str) -> Video | str:
    """An image sequence opened as a video of SEQUENCE_FPS, or why it cannot be: its size is its
    first frame's; a frame that cannot be read ends it early."""
    import cv2

    files = sequence_files(source)
    if not files:
        return "no image files in this sequence (a folder of frames, or a pattern matching them)"
    first = cv2.imread(str(files[0]), cv2.IMREAD_COLOR)
    if first is None:
        return f"its first frame {files[0].name} is not an image OpenCV reads"
    return Video(source, SEQUENCE_FPS, first.shape[1], first.shape[0], len(files), _FileFrames(files))


def open_video(source: str, sequence: bool = False) -> Video | str:
    """The opened video (an image sequence with `sequence`), or why it cannot be opened."""
    import cv2

    if sequence:
        return open_sequence(source)
    if not source.isdigit() and "://" not in source and not Path(source).is_file():
        return "no such file"
    # FFmpeg's and OpenCV's own complaints would land on the terminal; the reason is ours to say
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")
    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)
    capture = cv2.VideoCapture(int(source) if source.isdigit() else source)
    if not capture.isOpened():
        capture.release()
        if source.isdigit():
            return f"OpenCV cannot open camera {source} (no such device, or no access to it)"
        if "://" in source:
            return "OpenCV cannot open this stream (unreachable, or a protocol its FFmpeg lacks)"
        return "OpenCV cannot open it as a video (corrupt, or a codec it lacks)"
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT))
    fps = capture.get(cv2.CAP_PROP_FPS)
    return Video(source, fps if fps and fps > 0 else 30.0, int(capture.get(cv2.CAP_PROP_FRAME_WIDTH)),
                 int(capture.get(cv2.CAP_PROP_FRAME_HEIGHT)), count if count > 0 else None, capture)
