"""The workspace folder every step shares, and its manifest `yedge.json`.

The manifest records, per step, what went in, with which options, and what came out (with
sha256 of model files), so later steps find their inputs with no arguments.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import platform
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from . import __version__
from .errors import EnvironmentProblem, InputError, UsageError

if TYPE_CHECKING:
    from .records import Record

    R = TypeVar("R", bound=Record)

MANIFEST_NAME = "yedge.json"
DEFAULT_WORKSPACE = "workspace"
ONNX_NAME = "yolact_edge.onnx"
INT8_ONNX_NAME = "yolact_edge_int8.onnx"
OM_STEM = "yolact_edge"
# an evaluation's files, in results/<run>/ and (the latest) in results/
BBOX_RESULTS, MASK_RESULTS, METRICS = "bbox_detections.json", "mask_detections.json", "metrics.json"
STREAM_RUN = "stream"  # the run name of streaming eval (it has no outputs/<run> folder)
CONTACT_SHEET = "contact_sheet.png"  # show's, beside its pictures
# eval's pictures in results/<run>/ (docs/pictures.md), and the arrays they are drawn from
PR_PNG = {"bbox": "pr_bbox.png", "segm": "pr_segm.png"}
PER_CLASS_AP_PNG, CONFUSION_PNG, SCORES_PNG = "per_class_ap.png", "confusion_matrix.png", "score_distribution.png"
CURVES_DATA = "pr_curves.npz"
# bench's pictures beside results/bench.json
BENCH_THROUGHPUT_PNG, BENCH_LATENCY_PNG, BENCH_STAGES_PNG = "bench_throughput.png", "bench_latency.png", \
    "bench_stages.png"


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


FILE_MODE = _file_mode()


@contextlib.contextmanager
def atomic_path(target: str | Path) -> Iterator[Path]:
    """Yield a temporary path beside `target`; rename it over `target` only if the block succeeds."""
    target = Path(target)
    if target.is_dir():
        raise UsageError("this path is a folder, not a file", path=target,
                         hint="pass the path of a file to write (inside this folder: FOLDER/NAME)")
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    except (FileExistsError, NotADirectoryError):
        raise EnvironmentProblem("cannot write here: a parent of this path is a file, not a folder",
                                 path=target, hint="choose another output path") from None
    except OSError as exc:
        raise EnvironmentProblem(f"cannot write here ({exc.strerror})", path=target,
                                 hint="choose a writable location or fix the permissions") from None
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, FILE_MODE)  # mkstemp makes 0600; give the usual umask-based mode
        os.replace(tmp_path, target)
    except BaseException as exc:
        tmp_path.unlink(missing_ok=True)
        if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EFBIG):
            raise EnvironmentProblem(f"could not write: {(exc.strerror or 'I/O error').lower()}", path=target,
                                     hint="free disk space (or raise the file size limit) and rerun; "
                                          "finished files are kept") from None
        raise


def remove_stale_temp(folder: Path) -> None:
    """Temporary files a killed run (kill -9) left behind; steps call this before resuming."""
    if folder.is_dir():
        for stale in folder.glob(".*.tmp"):
            stale.unlink(missing_ok=True)


def atomic_write_text(target: str | Path, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def atomic_copy(source: str | Path, target: str | Path) -> None:
    import shutil

    with atomic_path(target) as tmp:
        shutil.copyfile(source, tmp)


def file_size(path: str | Path) -> int:
    """Size in bytes, or -1 when the file does not exist."""
    try:
        return os.stat(path).st_size
    except FileNotFoundError:
        return -1


def sha256_file(path: str | Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


# Distributions whose versions the manifest records, by the name they are imported as.
_RECORDED_VERSIONS = {"torch": "torch", "onnx": "onnx", "onnxruntime": "onnxruntime",
                      "numpy": "numpy", "cv2": "opencv-python-headless"}


def versions() -> dict[str, str]:
    """Versions of what computed a step's outputs, for the manifest (read from the installed
    packages' metadata, so recording them imports nothing)."""
    from importlib import metadata

    found = {"yedge": __version__, "python": platform.python_version()}
    for module, distribution in _RECORDED_VERSIONS.items():
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[module] = metadata.version(distribution)
    return found


def append_to_log(path: Path, entry: dict) -> list[dict]:
    """A run appended to a JSON list of runs (bench.json, compare.json) with the versions and the
    time it ran, written atomically; every run the log holds now."""
    runs = json.loads(path.read_text()) if path.exists() else []
    runs.append({**entry, "versions": versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
    atomic_write_text(path, json.dumps(runs, indent=2) + "\n")
    return runs


def plain_name(name: str, option: str) -> str:
    """A folder name of the workspace's own: not a path that leaves its folder."""
    if not name or name in (".", "..") or "/" in name or "\\" in name:
        raise UsageError(f"{option} {name!r} is not a plain folder name",
                         hint=f"give {option} a name without '/' or '..', e.g. {option} npu")
    return name


class Workspace:
    """The folder's layout (every path a step reads or writes is named here), its manifest of
    typed step records, and its lock."""

    def __init__(self, root: str | Path = DEFAULT_WORKSPACE):
        self.root = Path(root)

    models_dir = property(lambda self: self.root / "models")
    inputs_dir = property(lambda self: self.root / "inputs")
    outputs_dir = property(lambda self: self.root / "outputs")
    results_dir = property(lambda self: self.root / "results")
    logs_dir = property(lambda self: self.root / "logs")
    manifest_path = property(lambda self: self.root / MANIFEST_NAME)
    default_onnx = property(lambda self: self.models_dir / ONNX_NAME)
    int8_onnx = property(lambda self: self.models_dir / INT8_ONNX_NAME)  # yedge quantize
    amct_dir = property(lambda self: self.models_dir / "amct")  # AMCT's deploy and fake-quant models
    aipp_config = property(lambda self: self.models_dir / "aipp.cfg")
    bin_dir = property(lambda self: self.inputs_dir / "bin_file")
    ids_path = property(lambda self: self.inputs_dir / "ids.json")
    prep_plan = property(lambda self: self.inputs_dir / "prep_plan.json")
    # One JSON line per decoded image ({"id", "width", "height"}), appended as images finish so
    # a resumed prep still knows every real size (a torn last line from a kill is ignored).
    image_sizes = property(lambda self: self.inputs_dir / "image_sizes.jsonl")
    # ais_bench's --output in CLI mode: it re-modes that folder, so it gets one of its own
    ais_bench_staging = property(lambda self: self.outputs_dir / ".ais_bench")
    bench_log = property(lambda self: self.results_dir / "bench.json")
    compare_log = property(lambda self: self.results_dir / "compare.json")
    report = property(lambda self: self.results_dir / "report.html")  # yedge report
    vis_dir = property(lambda self: self.results_dir / "vis")
    predict_dir = property(lambda self: self.root / "predict")  # predict's folders, one per run

    def om_output(self, batch_size: int | None, quantized: bool = False) -> Path:
        """models/yolact_edge_bs{N} (atc adds .om), or models/yolact_edge_dynamic; with
        yolact_edge_int8 for an INT8 model (AMCT's deploy model)."""
        stem = f"{OM_STEM}_int8" if quantized else OM_STEM
        return self.models_dir / (f"{stem}_bs{batch_size}" if batch_size else f"{stem}_dynamic")

    def run_dir(self, name: str) -> Path:
        return self.outputs_dir / plain_name(name, "--run")

    def run_results(self, name: str) -> Path:
        """results/<run>/: one evaluation's files per run folder."""
        return self.results_dir / plain_name(name, "--run")

    def log(self, name: str) -> Path:
        return self.logs_dir / f"{name}.log"

    def read_ids(self) -> list[int]:
        """The prepared images' COCO ids, by position (`<pos>.bin`)."""
        if not self.ids_path.exists():
            raise InputError("no prepared inputs (ids.json missing)", path=self.ids_path,
                             hint="run `yedge prep --images DIR --annotations FILE` first")
        return json.loads(self.ids_path.read_text())["ids"]

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One yedge at a time per workspace: a second one is refused with the holder's pid."""
        import fcntl

        path = self.root / ".yedge.lock"
        created = not self.root.exists()  # removed again if the command leaves nothing in it
        try:
            self.root.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as exc:
            raise EnvironmentProblem(f"workspace is not writable ({exc.strerror})", path=self.root,
                                     hint="fix its permissions or pick another --workspace") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise EnvironmentProblem(f"another yedge (pid {holder}) is working in this workspace",
                                     path=self.root, hint="wait for it to finish, or use another --workspace") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, str(os.getpid()).encode(), 0)
            yield
        finally:
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)
            if created and [p.name for p in self.root.iterdir()] == [path.name]:
                path.unlink()
                self.root.rmdir()

    def manifest(self) -> dict[str, Any]:
        if not self.manifest_path.exists():
            return {"steps": {}}
        try:
            data = json.loads(self.manifest_path.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"manifest is unreadable ({exc})", path=self.manifest_path,
                             hint="delete it and rerun the steps, or pick another --workspace") from None
        data.setdefault("steps", {})
        return data

    def step(self, name: str) -> dict[str, Any] | None:
        """A step's entry exactly as stored (the on-disk format; steps use `load`)."""
        return self.manifest()["steps"].get(name)

    def steps_done(self) -> list[str]:
        return list(self.manifest()["steps"])

    def load(self, kind: type[R]) -> R | None:
        """A step's record, or None when the step has not run here."""
        entry = self.manifest()["steps"].get(kind.STEP)
        return None if entry is None else kind.from_entry(entry)

    def need(self, kind: type[R], what: str, command: str) -> R:
        """An earlier step's record, or an error saying which step to run first."""
        record = self.load(kind)
        if record is None:
            raise InputError(f"no {what} in this workspace", path=self.root,
                             hint=f"run `{command}` first (or pass the file explicitly)")
        return record

    def save(self, record: Record) -> None:
        """Store a step's record (atomically), stamped with versions and time."""
        data = self.manifest()
        entry = {**record.to_entry(), "versions": versions(), "time": time.strftime("%Y-%m-%dT%H:%M:%S%z")}
        data["steps"][record.STEP] = entry
        atomic_write_text(self.manifest_path, json.dumps(data, indent=2) + "\n")

    def relative(self, path: str | Path) -> str:
        """Paths inside the workspace are stored relative to it, so the folder can move."""
        path = Path(path).absolute()
        try:
            return str(path.relative_to(self.root.absolute()))
        except ValueError:
            return str(path)

    def resolve(self, stored: str) -> Path:
        path = Path(stored)
        return path if path.is_absolute() else self.root / path
