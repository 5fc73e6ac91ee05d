"""--engine ray (stream.ray_engine): the local engine's stages on Ray, on a
local cluster the command starts and on a two-node cluster this module starts on this machine —
the same predictions.jsonl, COCO result files and metrics as --engine local, on onnxruntime and on
the Ascend emulator (two emulated NPUs, two replicas), also when a replica's process is killed
mid-run; and one-line errors for what the cluster cannot do."""
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from yolact_edge_cli.errors import EnvironmentProblem, UsageError
from yolact_edge_cli.steps import convert
from yolact_edge_cli.stream.ray_cluster import RaySettings, parse_resources, plan_replicas

from .conftest import DATA, assert_clean_failure, copy_sample_images, fake_env, run_cli

pytestmark = pytest.mark.ray

MBV2 = "yolact_edge_mobilenetv2_config"
RAY = str(Path(sys.executable).parent / "ray")


@pytest.fixture(scope="module")
def workspace(tmp_path_factory, prepared):
    """The mobilenet workspace prep → infer ran on (the two sample photos), with a batch-1 .om
    built by the emulated atc."""
    ws = prepared(tmp_path_factory.mktemp("ray") / "ws", MBV2)
    with pytest.MonkeyPatch.context() as patch:
        for key, value in fake_env().items():
            patch.setenv(key, value)
        convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    return ws


class Cluster:
    def __init__(self, address: str, env: dict, trace: Path):
        self.address, self.env, self.trace = address, env, trace


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    """A head node with the cluster's CPUs (the read and host tasks run there) and a worker node
    with two emulated NPUs and no CPU (the replicas run there): every job needs both nodes. Both
    run with the Ascend emulators' environment, the NPUs' executes traced to one file."""
    trace = tmp_path_factory.mktemp("cluster") / "trace.jsonl"
    # Ray ≥ 2.60 turns token authentication on for a cluster started where a token file exists
    # (a local ray.init() writes one); this test cluster and its drivers go without, alike
    patch = pytest.MonkeyPatch()
    patch.setenv("RAY_AUTH_MODE", "disabled")
    env = {**os.environ, **fake_env(FAKE_NPU_DEVICES="0,1", FAKE_ACL_TRACE=str(trace))}
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    common = ["--disable-usage-stats", "--object-store-memory=200000000"]
    _ray_start(["--head", f"--port={port}", "--num-cpus=2", "--include-dashboard=false", *common], env)
    try:
        _ray_start([f"--address=127.0.0.1:{port}", "--num-cpus=0", '--resources={"NPU": 2}', *common], env)
        yield Cluster(f"127.0.0.1:{port}", env, trace)
    finally:
        subprocess.run([RAY, "stop", "--force"], capture_output=True, timeout=180)
        patch.undo()


def _ray_start(arguments: list[str], env: dict) -> None:
    proc = subprocess.run([RAY, "start", *arguments], env=env, capture_output=True, text=True, timeout=180)
    assert proc.returncode == 0, proc.stderr[-3000:]


def _video(path: Path, frames: int = 6) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"mp4v"), 10.0, (160, 120))
    photo = cv2.resize(cv2.imread(str(DATA / "coffee.png")), (160, 120))
    for i in range(frames):
        writer.write(np.roll(photo, 9 * i, axis=1))
    writer.release()
    return path


def _sources(folder: Path) -> Path:
    """The two sample photos, an unreadable image and a short video, in one folder."""
    copy_sample_images(folder)
    (folder / "broken.jpg").write_bytes(b"not a jpeg")
    _video(folder / "clip.mp4")
    return folder


def test_ray_on_a_local_cluster_gives_the_predictions_of_local(workspace, tmp_path):
    """Images, a bad image and a video's frames; two replicas on the local cluster the command
    starts (and stops): predictions.jsonl byte for byte, the same drawn files and failures."""
    sources = _sources(tmp_path / "in")
    runs = {}
    for engine, extra in (("local", ()), ("ray", ("--replicas", "2", "--replica-resources", "CPU=0.5"))):
        proc = run_cli("-w", workspace.root, "--json", "predict", sources, "--skip-bad", "--engine", engine,
                       *extra, "-o", tmp_path / engine, subprocess_=True)
        assert proc.returncode == 0, proc.stderr
        runs[engine] = json.loads(proc.stdout)
    ours, theirs = runs["ray"], runs["local"]
    assert (ours["images"], ours["frames"]) == (theirs["images"], theirs["frames"]) == (2, 6)
    assert ours["failed"] == theirs["failed"] and [Path(f["source"]).name for f in ours["failed"]] == ["broken.jpg"]
    ray_out, local_out = tmp_path / "ray", tmp_path / "local"
    assert (ray_out / "predictions.jsonl").read_bytes() == (local_out / "predictions.jsonl").read_bytes()
    assert sorted(p.name for p in ray_out.iterdir()) == sorted(p.name for p in local_out.iterdir())
    assert "Traceback" not in proc.stderr and "INFO" not in proc.stderr  # Ray's own lines stay in its logs
    # its core worker's lines go to the workspace's log (issue 19, row 14; test_native_stderr_goes_to_the_log)
    assert "core_worker" not in proc.stderr and "max_restarts" not in proc.stderr
    assert (workspace.root / "logs" / "ray.log").exists()


def test_native_stderr_goes_to_the_log(tmp_path):
    """What Ray's C++ core writes to file descriptor 2 goes to the log while Ray runs; yedge's own
    messages (sys.stderr) do not, and descriptor 2 is the terminal's again afterwards."""
    log = tmp_path / "logs" / "ray.log"
    code = ("import os, sys\n"
            "from yolact_edge_cli.stream.ray_cluster import native_stderr_to\n"
            f"with native_stderr_to(__import__('pathlib').Path({str(log)!r})):\n"
            "    os.write(2, b'native line\\n')\n"
            "    print('our message', file=sys.stderr)\n"
            "os.write(2, b'after\\n')\n")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert log.read_text() == "native line\n"
    assert proc.stderr == "our message\nafter\n"


@pytest.mark.parametrize("backend", ["onnxruntime", "ascend"])
def test_ray_streaming_eval_on_a_two_node_cluster(workspace, cluster, backend):
    """Streaming eval through the cluster's address (ascend: the two emulated NPUs): the COCO
    result files and metrics of --engine local."""
    images = workspace.step("prep")["inputs"]["images"]
    for engine in ("local", "ray"):
        where = {"ray": ("--ray-address", cluster.address), "local": ("--device", "0") if backend == "ascend" else ()}
        proc = run_cli("-w", workspace.root, "--json", "eval", "--images", images, "--backend", backend,
                       "--engine", engine, *where[engine], env=cluster.env)
        assert proc.returncode == 0, proc.stderr
        shutil.copytree(workspace.results_dir / "stream", workspace.results_dir / f"{backend}_{engine}")
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (workspace.results_dir / f"{backend}_ray" / name).read_bytes() == \
            (workspace.results_dir / f"{backend}_local" / name).read_bytes(), name
    ours, theirs = (json.loads((workspace.results_dir / f"{backend}_{engine}" / "metrics.json").read_text())
                    for engine in ("ray", "local"))
    assert ours["coco"] == theirs["coco"] and ours["yolact_ap"] == theirs["yolact_ap"]
    assert ours["provenance"]["backend"] == backend


def test_bench_stream_on_ray(workspace, cluster):
    proc = run_cli("-w", workspace.root, "--json", "bench", "--stream", "-n", "2", "--backend", "onnxruntime",
                   "--engine", "ray", "--ray-address", cluster.address, env=cluster.env)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["mode"] == "stream (ray)" and result["stages_ms"]["inference"] > 0
    assert result["stages_ms"]["images_per_second"] > 0


def test_batches_of_two_while_another_cluster_runs(prepared, cluster, tmp_path):
    """A dynamic-batch model at --batch-size 2 (three images: the last batch padded) with no
    --ray-address while the module's cluster runs on this machine: the command starts a cluster
    of its own, and each image keeps its own detections (the predictions of --engine local)."""
    ws = prepared(tmp_path / "ws", MBV2, dynamic_batch=True)
    images = copy_sample_images(tmp_path / "photos")
    cv2.imwrite(str(images / "zzz.png"), np.roll(cv2.imread(str(images / "coffee.png")), 40, axis=1))
    for engine in ("local", "ray"):
        proc = run_cli("-w", ws.root, "predict", images, "--batch-size", "2", "--no-save-images",
                       "--engine", engine, "-o", tmp_path / engine, subprocess_=True)
        assert proc.returncode == 0, proc.stderr
    lines = (tmp_path / "ray" / "predictions.jsonl").read_bytes()
    assert lines == (tmp_path / "local" / "predictions.jsonl").read_bytes()
    detections = [json.dumps(json.loads(line)["detections"]) for line in lines.splitlines()]
    assert len(set(detections)) == 3  # three images, three different results


def _predict_ascend(workspace, cluster, sources: Path, out: Path, *extra: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "yolact_edge_cli", "-w", str(workspace.root), "--json", "predict", str(sources),
         "--backend", "ascend", "--no-save-images", "-o", str(out), *extra],
        env=cluster.env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _eight_images(folder: Path) -> Path:
    folder.mkdir()
    for i in range(4):
        for name in ("astronaut.png", "coffee.png"):
            shutil.copy(DATA / name, folder / f"{i}_{name}")
    return folder


def _traced(cluster) -> list[dict]:
    if not cluster.trace.exists():
        return []
    return [json.loads(line) for line in cluster.trace.read_text().splitlines() if line.strip()]


def test_two_emulated_npus_are_two_replicas_and_a_killed_one_is_replaced(workspace, cluster, tmp_path):
    """Eight images on the worker node's two NPUs (one replica each, ASCEND_RT_VISIBLE_DEVICES set
    by Ray): the predictions of the local engine on NPU 0. Killed mid-run (kill -9 of the
    process that ran the first batch), Ray restarts the replica and retries its batches: the
    run still ends well, with the same predictions."""
    sources = _eight_images(tmp_path / "in")
    local = _predict_ascend(workspace, cluster, sources, tmp_path / "local", "--device", "0")
    assert local.wait(timeout=600) == 0, local.stderr.read()  # type: ignore[union-attr]
    cluster.trace.unlink(missing_ok=True)
    proc = _predict_ascend(workspace, cluster, sources, tmp_path / "ray", "--engine", "ray",
                           "--ray-address", cluster.address)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()  # type: ignore[union-attr]
    assert json.loads(proc.stdout.read())["images"] == 8  # type: ignore[union-attr]
    executes = _traced(cluster)
    assert len(executes) == 8 and {e["device"] for e in executes} == {0, 1}
    assert len({e["pid"] for e in executes}) == 2  # one process per replica
    expected = (tmp_path / "local" / "predictions.jsonl").read_bytes()
    assert (tmp_path / "ray" / "predictions.jsonl").read_bytes() == expected

    cluster.trace.unlink(missing_ok=True)
    proc = _predict_ascend(workspace, cluster, sources, tmp_path / "killed", "--engine", "ray",
                           "--ray-address", cluster.address)
    deadline = time.monotonic() + 300
    while not _traced(cluster) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    victim = _traced(cluster)[0]["pid"]
    os.kill(victim, signal.SIGKILL)
    assert proc.wait(timeout=600) == 0, proc.stderr.read()  # type: ignore[union-attr]
    executes = _traced(cluster)
    assert victim in {e["pid"] for e in executes} and len({e["pid"] for e in executes}) >= 3  # a new replica
    assert (tmp_path / "killed" / "predictions.jsonl").read_bytes() == expected


def test_a_lost_driver_leaves_no_result_file(workspace, cluster, tmp_path):
    """The driver (this command) killed mid-run: no predictions.jsonl, complete or not."""
    cluster.trace.unlink(missing_ok=True)
    proc = _predict_ascend(workspace, cluster, _eight_images(tmp_path / "in"), tmp_path / "out", "--engine", "ray",
                           "--ray-address", cluster.address)
    deadline = time.monotonic() + 300
    while not _traced(cluster) and time.monotonic() < deadline and proc.poll() is None:
        time.sleep(0.1)
    assert proc.poll() is None, proc.stderr.read()  # type: ignore[union-attr]
    proc.kill()
    proc.wait(timeout=60)
    assert not (tmp_path / "out" / "predictions.jsonl").exists()


def test_doctor_reports_ray_and_the_cluster(workspace, cluster):
    proc = run_cli("-w", workspace.root, "--json", "doctor", "--ray-address", cluster.address)
    checks = {c["name"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["ray"]["status"] == "ok" and checks["ray"]["detail"][0].isdigit()  # its version
    assert checks["cluster"]["status"] == "ok" and "2 node(s)" in checks["cluster"]["detail"]
    assert "CPU=2" in checks["cluster"]["detail"] and "NPU=2" in checks["cluster"]["detail"]


def test_what_the_cluster_cannot_do_is_one_line(workspace, cluster, tmp_path, monkeypatch):
    photo = str(DATA / "coffee.png")
    proc = run_cli("-w", workspace.root, "predict", photo, "--engine", "ray", "--ray-address", cluster.address,
                   "--replica-resources", "TPU=1", "-o", tmp_path / "a", env=cluster.env)
    assert_clean_failure(proc, "no node of the Ray cluster has", "TPU=1", "NPU=2", code=4)
    proc = run_cli("-w", workspace.root, "predict", photo, "--engine", "ray", "--ray-address", cluster.address,
                   "--replicas", "3", "--backend", "ascend", "-o", tmp_path / "b", env=cluster.env)
    assert_clean_failure(proc, "3 replicas of NPU=1", "the cluster's 2 NPU", code=4)
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        closed = probe.getsockname()[1]
    proc = run_cli("-w", workspace.root, "predict", photo, "--engine", "ray", "--ray-address", f"127.0.0.1:{closed}",
                   "-o", tmp_path / "c")
    assert_clean_failure(proc, f"cannot reach the Ray cluster at 127.0.0.1:{closed}", "ray start --head", code=4)
    proc = run_cli("-w", workspace.root, "--json", "doctor", "--ray-address", f"127.0.0.1:{closed}")
    cluster_check = [c for c in json.loads(proc.stdout)["checks"] if c["name"] == "cluster"]
    assert proc.returncode == 4 and cluster_check[0]["status"] == "fail"
    monkeypatch.setitem(sys.modules, "ray", None)  # as where Ray is not installed
    proc = run_cli("-w", workspace.root, "predict", photo, "--engine", "ray", "-o", tmp_path / "d")
    assert_clean_failure(proc, "needs Ray, which is not installed", "yedge[ray]", code=4)
    proc = run_cli("-w", workspace.root, "predict", photo, "--replicas", "2", "-o", tmp_path / "e")
    assert_clean_failure(proc, "--engine ray", code=2)
    proc = run_cli("-w", workspace.root, "predict", photo, "--engine", "ray", "--backend", "ascend",
                   "--device", "0,1", "-o", tmp_path / "f")
    assert_clean_failure(proc, "Ray gives each replica its NPU", code=2)
    assert not any((tmp_path / n).exists() for n in "abcdef")  # nothing written


def test_replica_plans():
    """What each replica reserves and how many there are, from the backend and the cluster."""
    node = {"CPU": 8.0, "NPU": 4.0}
    assert plan_replicas(RaySettings(), "ascend", "0", node, [node]) == (4, {"NPU": 1.0, "CPU": 0.0})
    assert plan_replicas(RaySettings(), "onnxruntime", "cpu", node, [node]) == (1, {"CPU": 1.0})
    assert plan_replicas(RaySettings(replicas=2, resources={"GPU": 1.0}), "torch", "cuda",
                         {"CPU": 4.0, "GPU": 2.0}, [{"CPU": 2.0, "GPU": 1.0}] * 2)[0] == 2
    with pytest.raises(EnvironmentProblem, match="leave none of the cluster's 8 CPUs"):
        plan_replicas(RaySettings(replicas=8), "onnxruntime", "cpu", node, [node])
    with pytest.raises(EnvironmentProblem, match="no node of the Ray cluster has CPU=0, GPU=1"):
        plan_replicas(RaySettings(), "torch", "cuda", node, [node])
    assert parse_resources("NPU=1, CPU=0.5") == {"NPU": 1.0, "CPU": 0.5}
    for bad, problem in (("NPU", "is not NAME=AMOUNT"), ("NPU=x", "is not NAME=AMOUNT"), ("=1", "is not NAME"),
                         ("NPU=-1", "a number ≥ 0"), ("CPU=nan", "a number ≥ 0"), ("CPU=1e400", "a number ≥ 0"),
                         ("CPU=1,CPU=2", "CPU is given twice"), ("memory=1000", "not a resource a replica")):
        with pytest.raises(UsageError, match=problem):
            parse_resources(bad)


def test_cpu_replicas_of_a_local_cluster_follow_one_rule(workspace, tmp_path):
    """Issue 19, row 7: --replicas alone and with the documented default --replica-resources
    CPU=1 are the same request: more CPU replicas than this machine's cores is refused at once."""
    too_many = str((os.cpu_count() or 1) + 1)
    for extra in ((), ("--replica-resources", "CPU=1")):
        proc = run_cli("-w", workspace.root, "predict", DATA / "coffee.png", "--engine", "ray",
                       "--replicas", too_many, *extra, "-o", tmp_path / "o")
        assert_clean_failure(proc, f"{too_many} replicas on the CPU reserve {too_many} CPUs", code=2)
