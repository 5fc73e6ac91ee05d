"""Shared fixtures: random checkpoints and workspaces (built once per test run, shared by the
pytest-xdist workers) and a CLI runner."""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest

if os.environ.get("PYTEST_XDIST_WORKER"):
    # The workers share the cores: one thread each, in this process and in the commands it
    # starts alike (a test may compare what the two compute, and some kernels' bits depend on
    # the thread count).
    os.environ["OMP_NUM_THREADS"] = "1"

import torch  # noqa: E402  (after the thread count it reads)

DATA = Path(__file__).parent / "data"
ROOT = Path(__file__).resolve().parents[1]

if "OMP_NUM_THREADS" not in os.environ:
    torch.set_num_threads(2)


# The longest tests, started first: begun last, one of them would run alone at the end while the
# other workers idle (with pytest-xdist each worker takes its tests in this order).
LONGEST_FIRST = ("tests/test_exact_on_every_cpu.py::test_the_exactness_tests_pass_under_an_instruction_set_limit",)


def pytest_collection_modifyitems(items):
    items.sort(key=lambda item: not item.nodeid.startswith(LONGEST_FIRST))


# A folder the caller gives for what the tests build: tests/test_exact_on_every_cpu.py gives its
# instruction-set reruns one, so that they build once between them.
SHARED_DIR_VARIABLE = "YEDGE_TEST_SHARED_DIR"


@pytest.fixture(scope="session")
def shared_dir(tmp_path_factory) -> Path:
    """A folder every process of this test run shares: $YEDGE_TEST_SHARED_DIR where set; with
    pytest-xdist, the parent of the workers' own base folders (each worker's is
    `<base>/popen-gwN`); alone, this session's own."""
    base = tmp_path_factory.getbasetemp()
    given = os.environ.get(SHARED_DIR_VARIABLE)
    folder = Path(given) if given else (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "shared"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def built_once(path: Path, build) -> Path:
    """`path`, made by `build(path)` once for the whole run: whichever worker takes the lock
    first builds it, the others wait and reuse it. A build that failed half-way leaves no mark
    and is tried again from nothing by the next test that needs it."""
    from filelock import FileLock

    done = path.with_name(path.name + ".done")
    with FileLock(str(path) + ".lock"):
        if not done.exists():
            if path.is_dir():
                shutil.rmtree(path)
            path.unlink(missing_ok=True)
            build(path)
            done.touch()
    return path


def _key(options: dict) -> str:
    """A short file-name-safe name for a cache entry's options."""
    import hashlib

    return hashlib.sha256(repr(sorted(options.items())).encode()).hexdigest()[:12]


@pytest.fixture(scope="session")
def checkpoint(shared_dir):
    """checkpoint(config, **constants) → path of a random .pth, generated once per test run."""
    from yolact_edge_cli.steps import random_weights

    def make(config: str = "yolact_edge_resnet50_config", **constants) -> Path:
        path = shared_dir / f"{config}_{_key(constants)}.pth"
        return built_once(path, lambda dest: random_weights.run(dest, config=config, **constants))

    return make


MINI_ANNOTATIONS = DATA / "golden" / "eval_mini" / "instances_mini.json"


FAKES = Path(__file__).parent / "fakes"


def fake_env(**extra) -> dict:
    """PATH with the fake npu-smi/atc (and this interpreter for their shebang), PYTHONPATH with
    the fake ais_bench package."""
    path = os.pathsep.join([str(FAKES / "bin"), str(Path(sys.executable).parent), os.environ["PATH"]])
    return {"PATH": path, "PYTHONPATH": str(FAKES / "python"), "FAKE_NPU_SMI": "310P3",
            "LD_LIBRARY_PATH": "/usr/local/Ascend/ascend-toolkit/latest/lib64", **extra}


@pytest.fixture
def ascend(monkeypatch):
    """This process sees the emulated Ascend host: the fake atc, npu-smi and ais_bench."""
    for key, value in fake_env().items():
        monkeypatch.setenv(key, value)
    monkeypatch.syspath_prepend(str(FAKES / "python"))
    monkeypatch.delenv("ASCEND_TOOLKIT_HOME", raising=False)
    return monkeypatch


# What a workspace copy links to instead of copying: models, prepared inputs and model outputs,
# which yedge only ever replaces (atomic writes), never writes into; a test that changes one in
# place takes its own copy first (own_copy). An .om is copied: atc writes over its output file.
LINKED_SUFFIXES = {".onnx", ".bin", ".pth"}


def clone_workspace(ws, dest: Path):
    """A copy of a workspace at `dest`, its manifest's paths inside it moved along. Models and
    outputs are hard links to the originals (LINKED_SUFFIXES), everything else is copied."""
    from yolact_edge_cli.workspace import Workspace

    def link_or_copy(source: str, target: str) -> None:
        if Path(source).suffix in LINKED_SUFFIXES:
            os.link(source, target)
        else:
            shutil.copy2(source, target)

    shutil.copytree(ws.root, dest, symlinks=False, copy_function=link_or_copy)
    clone = Workspace(dest)
    clone.manifest_path.write_text(clone.manifest_path.read_text().replace(str(ws.root), str(clone.root)))
    return clone


def own_copy(path: Path) -> Path:
    """`path` made a file of its own (no longer a hard link of a cached one), for a test that
    changes the file in place (its mode, say) without changing the other copies."""
    data = path.read_bytes()
    path.unlink()
    path.write_bytes(data)
    return path


@pytest.fixture(scope="session")
def export_cache(shared_dir, checkpoint):
    """export_cache(config, export_options) → the workspace where only export ran (the
    checkpoint of `config`, seed 0), exported once per test run; never written to: tests take
    copies (exported, prepared)."""
    from yolact_edge_cli.steps import export
    from yolact_edge_cli.workspace import Workspace

    def get(config: str, export_options: dict):
        root = shared_dir / f"exported-{config}-{_key(export_options)}"
        built_once(root, lambda folder: export.run(Workspace(folder), checkpoint(config),
                                                   export.ExportOptions(**export_options)))
        return Workspace(root)

    return get


@pytest.fixture(scope="session")
def exported(export_cache):
    """exported(dest, config, **export_options) → a copy at `dest` of export_cache's workspace."""

    def make(dest: Path, config: str = "yolact_edge_resnet50_config", **export_options):
        return clone_workspace(export_cache(config, export_options), dest)

    return make


@pytest.fixture(scope="session")
def prepared(shared_dir, export_cache):
    """prepared(dest, config, **export_options) → a copy at `dest` of a workspace where export,
    prep (the two sample photos of the mini COCO set) and infer (onnxruntime) ran; each distinct
    one is built once per test run, so modules share the work and never each other's changes."""
    from yolact_edge_cli.steps import infer, prep
    from yolact_edge_cli.workspace import Workspace

    def build(root: Path, config: str, export_options: dict) -> None:
        ws = clone_workspace(export_cache(config, export_options), root / "ws")
        prep.run(ws, copy_sample_images(root / "images"), MINI_ANNOTATIONS, prep.PrepOptions(workers=1))
        infer.run(ws, infer.InferOptions(backend="onnxruntime"))

    def make(dest: Path, config: str = "yolact_edge_resnet50_config", **export_options):
        root = shared_dir / f"prepared-{config}-{_key(export_options)}"
        built_once(root, lambda folder: build(folder, config, export_options))
        return clone_workspace(Workspace(root / "ws"), dest)

    return make


# The video config the workflow tests run (docs/video.md): the one without SPA, a little faster.
VIDEO_CONFIG = "yolact_edge_vid_minimal_resnet50_config"


@pytest.fixture(scope="session")
def video_ws(exported, tmp_path_factory):
    """A workspace with the video config's export (fpn layout, its two graphs): exported once
    per test run, a copy of its own for each worker (its tests write results into it)."""
    return exported(tmp_path_factory.mktemp("video-ws") / "ws", VIDEO_CONFIG)


@pytest.fixture(scope="session")
def r50_model(checkpoint):
    from yolact_edge_cli.model.checkpoint import load_model

    return load_model(checkpoint(), "yolact_edge_resnet50_config")


def copy_sample_images(folder: Path) -> Path:
    """The two sample photos (the eval_mini set's images) in a folder of their own."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in ("astronaut.png", "coffee.png"):
        shutil.copy(DATA / name, folder / name)
    return folder


def make_coco_set(folder: Path, count: int) -> Path:
    """`count` 600×400 PNGs (shifted copies of coffee.png) with one annotation each; returns
    the annotation file beside the folder."""
    import cv2
    import numpy as np

    folder.mkdir(parents=True, exist_ok=True)
    source = cv2.imread(str(DATA / "coffee.png"))
    images, annotations = [], []
    for i in range(count):
        cv2.imwrite(str(folder / f"{i:04d}.png"), np.roll(source, i * 7, axis=1))
        images.append({"id": 100 + i, "file_name": f"{i:04d}.png", "width": 600, "height": 400})
        annotations.append({"id": i + 1, "image_id": 100 + i, "category_id": 1, "iscrowd": 0,
                            "bbox": [10, 10, 50, 50], "area": 2500,
                            "segmentation": [[10, 10, 60, 10, 60, 60, 10, 60]]})
    path = folder.parent / f"{folder.name}.json"
    path.write_text(json.dumps({"images": images, "annotations": annotations,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path


def run_cli(*args: str, cwd: Path | None = None, env: dict | None = None, timeout: float = 300,
            subprocess_: bool = False) -> subprocess.CompletedProcess:
    """Run `yedge ARGS` as a user would, capturing its output and exit code: in this process
    (through `cli.main`, the installed entry point) unless the test needs a process of its own
    — another environment or folder, or output written below Python (`subprocess_=True`)."""
    if env is None and cwd is None and not subprocess_:
        return _run_in_process([str(a) for a in args])
    full_env = {**os.environ, "COLUMNS": "200", **(env or {})}
    return subprocess.run([sys.executable, "-m", "yolact_edge_cli", *map(str, args)], cwd=cwd,
                          env=full_env, capture_output=True, text=True, timeout=timeout)


def _run_in_process(args: list[str]) -> subprocess.CompletedProcess:
    import contextlib
    import io
    from unittest import mock

    from yolact_edge_cli import cli

    stdout, stderr = io.StringIO(), io.StringIO()
    argv = ["yedge", *args]
    handler = signal.getsignal(signal.SIGINT)  # an interrupted command ignores SIGINT from then on
    with mock.patch.object(sys, "argv", argv), contextlib.redirect_stdout(stdout), \
            contextlib.redirect_stderr(stderr), mock.patch.dict(os.environ, {"COLUMNS": "200"}):
        try:
            cli.main()
            code = 0
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            signal.signal(signal.SIGINT, handler)
    return subprocess.CompletedProcess(argv, code, stdout.getvalue(), stderr.getvalue())


def assert_clean_failure(proc: subprocess.CompletedProcess, *fragments: str, code: int | None = None):
    """A user error: non-zero exit, one 'error:' line naming what is wrong, no traceback."""
    assert proc.returncode != 0, proc.stdout + proc.stderr
    if code is not None:
        assert proc.returncode == code, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, proc.stderr
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    return lines[0]
