"""Identities across a video's frames (`predict --track`, docs/video.md §8): supervision's
ByteTrack, one tracker per video, fed each frame's detections in frame order."""
from __future__ import annotations

import numpy as np

from .errors import EnvironmentProblem


def _supervision():
    try:
        import supervision
    except ImportError:
        raise EnvironmentProblem("predict --track needs supervision's ByteTrack, which is not installed",
                                 hint="pip install 'yedge[track]'") from None
    if not hasattr(supervision, "ByteTrack"):
        raise EnvironmentProblem(f"supervision {supervision.__version__} no longer has ByteTrack",
                                 hint="pip install 'yedge[track]' (supervision 0.30)")
    return supervision


def check_available() -> None:
    """Said before any frame runs."""
    _supervision()


class VideoTracks:
    """ByteTrack on one video at its frame rate, with its defaults (activation above 0.25, lost
    tracks kept 30 frames at 30 frames/s, IoU matching)."""

    def __init__(self, fps: float):
        import warnings

        sv = _supervision()
        with warnings.catch_warnings():  # supervision marks ByteTrack for its move to `trackers`
            warnings.simplefilter("ignore", FutureWarning)
            self._tracker = sv.ByteTrack(frame_rate=fps)
        self._sv = sv

    def update(self, detections: list[dict]) -> list[int | None]:
        """One frame's detections (predictions.jsonl's: 'box' x1,y1,x2,y2, 'score', 'category_id')
        → each one's identity, None for those no track took."""
        sv = self._sv
        count = len(detections)
        frame = sv.Detections(
            xyxy=np.array([d["box"] for d in detections], dtype=np.float32).reshape(count, 4),
            confidence=np.array([d["score"] for d in detections], dtype=np.float32),
            class_id=np.array([d["category_id"] for d in detections], dtype=int),
            data={"index": np.arange(count)})
        tracked = self._tracker.update_with_detections(frame)
        ids: list[int | None] = [None] * count
        for index, track_id in zip(tracked.data["index"], tracked.tracker_id):
            ids[int(index)] = int(track_id)
        return ids
