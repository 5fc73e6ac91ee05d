"""The engines behind every streaming command (yolact_edge_cli/stream): every frame of one video
goes, in order, to one replica — on the local engine with two replicas in worker processes and on
a Ray cluster with two actors — and the predictions equal one replica's in this process."""
import dataclasses
import json
import os
import sys
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact_edge_cli.data import binio
from yolact_edge_cli.resolve import host_spec, model_for
from yolact_edge_cli.stream import stages
from yolact_edge_cli.stream.engine import recipe_for
from yolact_edge_cli.stream.items import Frames, Item, Prediction, VideoSource, numbered
from yolact_edge_cli.stream.local import LocalEngine
from yolact_edge_cli.stream.schedule import Schedule

from .conftest import DATA

MBV2 = "yolact_edge_mobilenetv2_config"


def test_a_source_stays_on_one_replica_and_new_ones_go_to_the_least_busy():
    schedule = Schedule(replicas=2, batch_size=2)
    placed = [schedule.add(unit, f"{unit}.{k}")[0].replica for unit, k in
              [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]]
    assert placed == [0, 0, 0, 1, 1, 1]  # unit 2: replica 1 had 2 in flight, replica 0 had 3
    group, place, full = schedule.add(3, "3.0", counts=False)  # a failed image rides along
    assert (group.replica, place, full) == (0, 1, False)  # 3 and 3 in flight: the first replica
    group, _, full = schedule.add(3, "3.1")
    assert full and group.members == ["0.2", "3.0", "3.1"]
    assert [g.members for g in schedule.rest()] == [["2.0"]]  # groups close when full
    for _ in range(3):
        schedule.done(group)
    assert schedule.loads == [2, 3]


class Traced:
    """A session that writes, per batch, its process and the CRC of each sample it ran."""

    def __init__(self, session, trace: Path):
        self.session, self.trace = session, trace
        self.info, self.device = session.info, session.device

    def run(self, batch):
        with open(self.trace, "a") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "samples": [zlib.crc32(s.tobytes()) for s in batch]}) + "\n")
        return self.session.run(batch)

    def close(self):
        self.session.close()


@dataclasses.dataclass(frozen=True)
class TracedRecipe(stages.SessionRecipe):
    trace: Path | None = None

    def open(self):
        return Traced(super().open(), self.trace)


def _video(path: Path, frames: int, shift: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 120))
    photo = cv2.resize(cv2.imread(str(DATA / "astronaut.png")), (160, 120))
    for i in range(frames):
        writer.write(np.roll(photo, shift * (i + 1), axis=1))
    writer.release()
    return path


@pytest.fixture(scope="module")
def case(tmp_path_factory, prepared):
    """A MobileNet workspace, and images and two videos interleaved."""
    root = tmp_path_factory.mktemp("engines")
    ws = prepared(root / "ws", MBV2)
    units = [Item(0, str(DATA / "coffee.png")), VideoSource(str(_video(root / "a.mp4", 6, 7)), 6),
             Item(0, str(DATA / "astronaut.png")), VideoSource(str(_video(root / "b.mp4", 5, -11)), 5)]
    return ws, units


def _run(engine, ws, units, trace: Path):
    choice = model_for(ws, "onnxruntime", None, None)
    recipe = TracedRecipe(**vars(recipe_for(ws, choice, "cpu")), trace=trace)
    with engine.open(recipe, lambda info: host_spec(ws, info.layout)) as run:
        return list(run.predictions(units)), run


def _check_affinity(predictions, units, trace: Path, spec) -> None:
    """Every frame of a video ran on one replica (process), in frame order; images anywhere."""
    expected = list(numbered(units))
    assert [(p.item.index, p.item.source, p.item.frame) for p in predictions] == \
           [(i.index, i.source, i.frame) for i in expected]
    ran = [json.loads(line) for line in trace.read_text().splitlines()]
    where = {crc: (n, run["pid"]) for n, run in enumerate(ran) for crc in run["samples"]}
    for video in {i.source for i in expected if i.frame is not None}:
        frames = [stages.prepare_item(i, spec)[1] for i in expected if i.source == video]
        runs = [where[zlib.crc32(np.ascontiguousarray(f).tobytes())] for f in frames]
        assert len({pid for _, pid in runs}) == 1, f"{video} was split across replicas"
        assert [n for n, _ in runs] == sorted(n for n, _ in runs)
        assert len({p.replica for p in predictions if p.item.source == video}) == 1


def _same_detections(a, b) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.error == y.error and (x.width, x.height) == (y.width, y.height)
        if x.detections is not None:
            assert np.array_equal(x.detections.boxes, y.detections.boxes)
            assert np.array_equal(x.detections.scores, y.detections.scores)
            assert np.array_equal(x.detections.classes, y.detections.classes)
            assert x.detections.rles == y.detections.rles


@pytest.fixture(scope="module")
def one_replica(case, tmp_path_factory):
    ws, units = case
    predictions, _ = _run(LocalEngine(workers=1), ws, units, tmp_path_factory.mktemp("one") / "trace.jsonl")
    return predictions


@pytest.mark.slow
def test_local_replicas_keep_each_video_on_one_replica_in_order(case, one_replica, tmp_path):
    ws, units = case
    trace = tmp_path / "trace.jsonl"
    predictions, run = _run(LocalEngine(workers=1, devices=("cpu", "cpu")), ws, units, trace)
    assert run.device == "cpu, cpu"
    assert {p.replica for p in predictions} == {0, 1}  # the second video went to the idle replica
    assert len({json.loads(line)["pid"] for line in trace.read_text().splitlines()}) == 2
    _, spec = stages.batching(run.info, None, False)
    _check_affinity(predictions, units, trace, spec)
    _same_detections(predictions, one_replica)


@pytest.mark.ray
def test_ray_keeps_each_video_on_one_replica_and_equals_local(case, one_replica, tmp_path):
    pytest.importorskip("ray")
    from ray import cloudpickle

    from yolact_edge_cli.stream.ray_cluster import RaySettings
    from yolact_edge_cli.stream.ray_engine import RayEngine

    cloudpickle.register_pickle_by_value(sys.modules[__name__])  # Ray's workers cannot import tests/
    ws, units = case
    trace = tmp_path / "trace.jsonl"
    engine = RayEngine(RaySettings(replicas=2, resources={"CPU": 0.5}), log=tmp_path / "ray.log")
    predictions, run = _run(engine, ws, units, trace)
    assert len({json.loads(line)["pid"] for line in trace.read_text().splitlines()}) == 2
    _, spec = stages.batching(run.info, None, False)
    _check_affinity(predictions, units, trace, spec)
    _same_detections(predictions, one_replica)


@pytest.mark.slow
def test_prepared_samples_run_in_ais_bench_batches_and_come_back_as_outputs(prepared, tmp_path):
    """infer's stream: each batch of prep's files is one source, so on two replicas each still
    runs whole as binio.group makes it (the last padded with its first file); every sample comes
    back in order with the model's own outputs, the bytes of its batch run directly, and each
    batch's run times ride on its first sample."""
    ws = prepared(tmp_path / "ws", MBV2, dynamic_batch=True)
    folder = tmp_path / "bin"
    folder.mkdir()
    rng = np.random.default_rng(3)
    for i in range(5):
        rng.standard_normal((3, 550, 550)).astype(np.float32).tofile(folder / f"{i}.bin")
    files = binio.list_input_files(folder)
    batches = binio.group(files, 2)
    choice = model_for(ws, "onnxruntime", None, 2)
    trace = tmp_path / "trace.jsonl"
    recipe = TracedRecipe(**vars(recipe_for(ws, choice, "cpu", 2)), trace=trace)
    units = [Frames(f"batch {n}", tuple(Item(0, str(f), prepared=True) for f in b.files))
             for n, b in enumerate(batches)]
    with LocalEngine(workers=1, devices=("cpu", "cpu")).open(recipe, lambda info: None) as run:
        predictions = list(run.predictions(units))
    assert [p.item.source for p in predictions] == [str(f) for f in files]
    assert {p.replica for p in predictions} == {0, 1}
    assert [p.batch_times is not None for p in predictions] == [True, False, True, False, True]
    ran = sorted(tuple(json.loads(line)["samples"]) for line in trace.read_text().splitlines())
    direct = [binio.read_batch(b, np.dtype(np.float32), (3, 550, 550)) for b in batches]
    assert ran == sorted(tuple(zlib.crc32(s.tobytes()) for s in data) for data in direct)
    session = recipe_for(ws, choice, "cpu", 2).open()
    try:
        for batch, data in zip(batches, direct):
            outputs = session.run(data)
            for j, path in enumerate(batch.files):
                got = next(p for p in predictions if p.item.source == str(path))
                assert got.detections is None and len(got.outputs) == len(outputs) == 6
                assert all(a.tobytes() == np.ascontiguousarray(o[j:j + 1]).tobytes()
                           for a, o in zip(got.outputs, outputs))
    finally:
        session.close()


def test_without_a_host_part_a_prediction_carries_the_outputs():
    """What the Ray engine's host task does for a run with no host part (infer's)."""
    outputs = [np.arange(4, dtype=np.float32)]
    assert stages.finish(Prediction(Item(0, "0.bin", prepared=True)), outputs, None).outputs is outputs
    assert stages.finish(Prediction(Item(0, "bad.png"), error="unreadable"), None, None).outputs is None


def test_each_npu_of_a_device_list_is_one_replica_and_named_once():
    from yolact_edge_cli.errors import UsageError
    from yolact_edge_cli.resolve import parse_devices

    assert parse_devices("0,1") == [0, 1] and parse_devices("cpu") == [0]
    with pytest.raises(UsageError, match="--device 0,1,0: NPU 0 is given twice"):
        parse_devices("0,1,0")
    with pytest.raises(UsageError, match="is not an NPU id list"):
        parse_devices("0,x")
