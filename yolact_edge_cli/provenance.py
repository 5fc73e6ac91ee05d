"""Where every artifact came from, and the checks that two artifacts belong together.

The chain: checkpoint (sha256) → ONNX (its metadata names the checkpoint) → `.om` (convert's
record names the ONNX and the checkpoint) → run folder (its record names the model, the
checkpoint and the prepared inputs) → results (the eval record names the run and the inputs).
A step that combines two artifacts calls a check here before it computes, so a mismatch is one
clear error instead of a wrong number with exit 0. docs/errors.md lists them.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from pathlib import Path

from rich.markup import escape

from .backends import CHECKPOINT_SUFFIXES
from .console import err
from .errors import InputError
from .records import ConvertRecord, ExportRecord, PrepRecord
from .workspace import Workspace, atomic_write_text, sha256_file

# Keys yedge writes into an exported ONNX's metadata_props.
ONNX_WEIGHTS_SHA256 = "yedge.weights_sha256"
ONNX_WEIGHTS_NAME = "yedge.weights"


@dataclass(frozen=True)
class Origin:
    """The checkpoint a model or an output folder was computed from."""

    weights_sha256: str
    weights: str  # the checkpoint's path (or name) when it was used, for messages

    def describe(self) -> str:
        return f"{Path(self.weights).name} (sha256 {self.weights_sha256[:12]})"


def checkpoint_origin(path: str | Path) -> Origin:
    return Origin(sha256_file(path), str(Path(path).absolute()))


def onnx_metadata(weights: str | Path) -> dict[str, str]:
    """What export stamps into the ONNX so the file names its checkpoint wherever it goes."""
    return {ONNX_WEIGHTS_SHA256: sha256_file(weights), ONNX_WEIGHTS_NAME: Path(weights).name}


def model_origin(ws: Workspace, model: str | Path, model_sha256: str | None = None) -> Origin | None:
    """The checkpoint a model file was made from: a .pth is its own; an ONNX is export's (when
    it is the file export wrote) or says so in its metadata; an .om through convert's record.
    None when nothing tells. `model_sha256`, when the caller has hashed the file already, saves
    reading a large model twice."""
    model = Path(model)
    if not model.is_file():
        return None
    if model.suffix in CHECKPOINT_SUFFIXES:
        return Origin(model_sha256 or sha256_file(model), str(model.absolute()))
    if model.suffix == ".onnx":
        export = ws.load(ExportRecord)
        if export and export.onnx_sha256 == (model_sha256 or sha256_file(model)):
            return Origin(export.weights_sha256, export.weights)
        import onnx
        from google.protobuf.message import DecodeError

        try:
            props = {p.key: p.value for p in onnx.load(str(model), load_external_data=False).metadata_props}
        except (DecodeError, ValueError, OSError):
            raise InputError("not a readable ONNX model (corrupt, or not ONNX)", path=model,
                             hint="export it again with `yedge export`") from None
        if ONNX_WEIGHTS_SHA256 in props:
            return Origin(props[ONNX_WEIGHTS_SHA256], props.get(ONNX_WEIGHTS_NAME, "?"))
        return None
    if model.suffix == ".om":
        convert = ws.load(ConvertRecord)
        for om in convert.oms if convert else []:
            if ws.resolve(om.om).resolve() == model.resolve() and om.weights_sha256:
                return Origin(om.weights_sha256, om.weights or "?")
    return None


def inputs_fingerprint(images: str, annotations: str, ids: list[int], dtype: str, layout: str) -> str:
    """What decides the prepared inputs: which images, in which positions, in which format."""
    plan = {"images": images, "annotations": annotations, "ids": ids, "dtype": dtype, "layout": layout}
    return hashlib.sha256(json.dumps(plan, sort_keys=True).encode()).hexdigest()


def prepared_fingerprint(ws: Workspace) -> str | None:
    prep = ws.load(PrepRecord)
    return prep.fingerprint if prep else None


@dataclass
class RunRecord:
    """Beside each run folder (`outputs/.<run>.yedge.json`, so the folder itself stays
    ais_bench's): what computed the outputs in it, and on which inputs."""

    model: str
    model_sha256: str
    weights: str | None = None
    weights_sha256: str | None = None
    inputs_fingerprint: str | None = None
    backend: str | None = None
    device: str | None = None
    batch_size: int | None = None
    layout: str | None = None
    extra: dict = field(default_factory=dict)
    precision: str | None = None  # None in records written before --precision

    @property
    def origin(self) -> Origin | None:
        return Origin(self.weights_sha256, self.weights or "?") if self.weights_sha256 else None


def run_record_path(run_dir: Path) -> Path:
    return Path(run_dir).parent / f".{Path(run_dir).name}.yedge.json"


def read_run(run_dir: Path) -> RunRecord | None:
    path = run_record_path(run_dir)
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    known = set(RunRecord.__dataclass_fields__)
    return RunRecord(**{k: v for k, v in data.items() if k in known})


def write_run(run_dir: Path, record: RunRecord) -> None:
    atomic_write_text(run_record_path(run_dir), json.dumps(asdict(record), indent=2) + "\n")


def _unverifiable(what: str, why: str) -> None:
    err.print(f"[yellow]warning:[/] cannot check {escape(what)}: {escape(why)}", highlight=False, soft_wrap=True)


def check_same_checkpoint(what: str, made_from: Origin | None, heads: Origin, fix: str) -> None:
    """`what` (outputs or a model) and the checkpoint whose heads run on the host (`heads`, hashed
    once by the caller) must be one."""
    if made_from is None:
        _unverifiable(f"which checkpoint {what} came from", "no record of it (made by an older yedge "
                      "or outside this workspace)")
        return
    if heads.weights_sha256 != made_from.weights_sha256:
        raise InputError(
            f"{what} was computed from {made_from.describe()}, but the host-side heads would come "
            f"from {heads.describe()}", path=heads.weights, hint=fix)


def check_same_inputs(what: str, fingerprint: str | None, ws: Workspace, fix: str) -> None:
    """`what` must have been computed on the inputs `prep` prepared last (ids.json's order)."""
    current = prepared_fingerprint(ws)
    if fingerprint is None or current is None:
        if ws.load(PrepRecord) is not None:
            _unverifiable(f"that {what} matches the prepared inputs", "no record of its inputs")
        return
    if fingerprint != current:
        raise InputError(f"{what} was computed on other prepared inputs than the current ones "
                         "(prep was rerun with other images, order or dtype since)",
                         path=ws.inputs_dir, hint=fix)


def check_current_model(what: str, weights_sha256: str | None, weights: str | None, ws: Workspace,
                        fix: str) -> None:
    """Results of the checkpoint exported before must not pass for the current one's."""
    export = ws.load(ExportRecord)
    if weights_sha256 and export and export.weights_sha256 not in ("", weights_sha256):
        made_from = Origin(weights_sha256, weights or "?")
        current = Origin(export.weights_sha256, export.weights)
        raise InputError(f"{what} is of outputs computed from {made_from.describe()}, but the "
                         f"model exported now is {current.describe()}", path=ws.manifest_path, hint=fix)
