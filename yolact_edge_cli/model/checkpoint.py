"""Checkpoints: load released `.pth` files safely, map old key names, check them against a
config (never filling gaps with random values as the reference does), and build the
random checkpoint of docs/random-checkpoint.md lives in `random_checkpoint.py`.
"""
from __future__ import annotations

import multiprocessing
import pickle
import re
import warnings
from collections import OrderedDict
from functools import cache
from pathlib import Path

import torch
from rich.markup import escape

from ..console import err
from ..errors import InputError
from .config import CONFIGS, ModelConfig, get_config
from .yolact import Yolact

# Keys the model carries but inference never reads; a checkpoint may lack them.
IGNORABLE_PREFIXES = ("semantic_seg_conv.",)
_NESTED_STATE_KEYS = ("state_dict", "model")


@cache
def expected_shapes(config_name: str) -> OrderedDict[str, tuple[int, ...]]:
    """The reference model's state_dict as key → shape, in order (built on the meta device)."""
    with torch.device("meta"):
        net = Yolact(CONFIGS[config_name])
    return OrderedDict((k, tuple(v.shape)) for k, v in net.state_dict().items())


def read_state_dict(path: str | Path) -> dict[str, torch.Tensor]:
    """torch.load with weights_only=True, every failure turned into a one-line InputError."""
    path = Path(path)
    if not path.exists():
        raise InputError("weights file not found", path=path,
                         hint="pass --weights with the path to a YolactEdge .pth checkpoint")
    if path.is_dir():
        raise InputError("is a directory, not a checkpoint", path=path,
                         hint="pass the .pth file itself to --weights")
    if path.stat().st_size == 0:
        raise InputError("checkpoint is empty (0 bytes)", path=path,
                         hint="the download or copy failed; fetch the .pth again")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            obj = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" in text or "Unsupported global" in text:
            raise InputError(
                "refused to load: the checkpoint contains Python objects or code, not just tensors",
                path=path, hint="use a plain state_dict .pth from a source you trust") from None
        raise InputError("not a readable PyTorch checkpoint (corrupt or not a .pth)", path=path,
                         hint="fetch the checkpoint again; it must be a torch.save of a state_dict") from None
    except (RuntimeError, EOFError, ValueError, OSError, IndexError, KeyError) as exc:
        raise InputError(
            f"not a readable PyTorch checkpoint (truncated or corrupt: {_first_line(exc)})",
            path=path, hint="fetch the checkpoint again; it must be a torch.save of a state_dict",
        ) from None
    for key in _NESTED_STATE_KEYS:
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
    if not isinstance(obj, dict) or not all(
        isinstance(k, str) and isinstance(v, torch.Tensor) for k, v in obj.items()
    ):
        raise InputError("checkpoint is not a state_dict (a mapping of names to tensors)",
                         path=path, hint="save the model with torch.save(model.state_dict(), path)")
    return _strip_data_parallel(obj, path)


_DATA_PARALLEL_PREFIX = "module."
_noted_data_parallel: set[Path] = set()


def _strip_data_parallel(state: dict[str, torch.Tensor], path: Path) -> dict[str, torch.Tensor]:
    """A model saved while wrapped in (Distributed)DataParallel has `module.` before every key;
    only an all-prefixed checkpoint is unwrapped, a mixed one is left to fail the key check."""
    if not state or not all(k.startswith(_DATA_PARALLEL_PREFIX) for k in state):
        return state
    # Once per file; pool workers stay quiet (the parent process speaks for the command).
    if path.resolve() not in _noted_data_parallel and multiprocessing.parent_process() is None:
        _noted_data_parallel.add(path.resolve())
        err.print(f"[yellow]note:[/] {escape(str(path))}: stripped the 'module.' prefix of a "
                  "DataParallel checkpoint", highlight=False, soft_wrap=True)
    return {k[len(_DATA_PARALLEL_PREFIX):]: v for k, v in state.items()}


def _first_line(exc: BaseException, limit: int = 120) -> str:
    """The exception's first line, shortened at a word (never mid-word) when it is long."""
    line = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if len(line) <= limit:
        return line
    return line[:limit].rsplit(" ", 1)[0].rstrip(",;:") + " …"


def normalize_keys(state: dict[str, torch.Tensor], num_downsample: int = 2) -> dict[str, torch.Tensor]:
    """Apply the reference's `load_weights` renames: YOLACT-v1 `fpn.*` → `fpn_phase_1/2.*`,
    dropping torchvision-style `backbone.layerN` keys and surplus FPN downsample layers."""
    out: dict[str, torch.Tensor] = {}
    for key, value in state.items():
        if key.startswith("backbone.layer") and not key.startswith("backbone.layers"):
            continue
        match = re.match(r"fpn(?:_phase_2)?\.downsample_layers\.(\d+)\.", key)
        if match and int(match.group(1)) >= num_downsample:
            continue
        if key.startswith("fpn.lat_layers."):
            key = "fpn_phase_1." + key[len("fpn."):]
        elif key.startswith("fpn."):
            key = "fpn_phase_2." + key[len("fpn."):]
        out[key] = value
    return out


def _mismatches(state: dict[str, torch.Tensor], config_name: str):
    expected = expected_shapes(config_name)
    missing = [k for k in expected if k not in state and not k.startswith(IGNORABLE_PREFIXES)]
    wrong = [k for k in expected
             if k in state and tuple(state[k].shape) != expected[k] and not k.startswith(IGNORABLE_PREFIXES)]
    unexpected = [k for k in state if k not in expected]
    return missing, wrong, unexpected


def _fit(state, config_name: str) -> float:
    expected = expected_shapes(config_name)
    good = sum(1 for k, shape in expected.items() if k in state and tuple(state[k].shape) == shape)
    return good / max(len(expected), len(state))


# Names the reference's video model takes only after loading (docs/video.md §1): a state_dict
# saved from the running model has them, and the reference would silently re-initialise the
# flow net from such a file instead of loading it.
RUNTIME_ONLY_PREFIXES = ("flow_net.flow_net.", "partial_backbone.")


def match_config(state: dict[str, torch.Tensor], config: str, path: str | Path) -> ModelConfig:
    """The config whose keys and shapes the checkpoint has exactly; `auto` tries them all."""
    runtime = sorted({p for k in state for p in RUNTIME_ONLY_PREFIXES if k.startswith(p)})
    if runtime:
        raise InputError(
            "a video checkpoint saved from the running model (run-time names "
            + ", ".join(p + "*" for p in runtime) + "): its flow net would not load",
            path=path, hint="save the weights under their checkpoint names: rename "
            "flow_net.flow_net.* to flow_net.* and drop partial_backbone.*")
    if config != "auto":
        get_config(config)  # an unknown name is a usage error naming the known ones
    candidates = list(CONFIGS) if config == "auto" else [config]
    for name in candidates:
        if not any(_mismatches(state, name)):
            return CONFIGS[name]
    best = max(CONFIGS, key=lambda name: _fit(state, name))
    missing, wrong, unexpected = _mismatches(state, candidates[0] if config != "auto" else best)
    problems = [f"missing {k}" for k in missing] + [f"shape of {k}" for k in wrong] + \
               [f"unexpected {k}" for k in unexpected]
    counts = f"{len(missing)} missing, {len(wrong)} mis-shaped, {len(unexpected)} unexpected keys"
    listed = ", ".join(problems[:5])
    if config == "auto":
        raise InputError(f"checkpoint matches no YolactEdge config (closest {best}: {counts}: {listed})",
                         path=path, hint="is this a YolactEdge/YOLACT checkpoint of the released configs?")
    if _fit(state, best) > _fit(state, config) and not any(_mismatches(state, best)):
        hint = f"it matches {best}: pass --config {best} or --config auto"
    else:
        hint = f"the closest config is {best}; check that this is a released YolactEdge checkpoint"
    raise InputError(f"checkpoint does not fit {config} ({counts}: {listed})", path=path, hint=hint)


def build_model(state: dict[str, torch.Tensor], cfg: ModelConfig) -> Yolact:
    """A ready eval-mode model whose every used weight comes from `state` (already matched)."""
    with torch.device("meta"):
        net = Yolact(cfg)
    full = OrderedDict()
    for key, shape in expected_shapes(cfg.name).items():
        value = state.get(key)
        if value is None or tuple(value.shape) != shape:  # only ignorable keys reach here
            value = torch.zeros(shape, dtype=torch.int64 if key.endswith("num_batches_tracked")
                                else torch.float32)
        elif value.is_floating_point():
            value = value.float()
        full[key] = value
    net.load_state_dict(full, assign=True)
    return net.eval()


def load_model(path: str | Path, config: str = "auto") -> Yolact:
    """Read, rename, check and load a checkpoint: the single entry point for every step."""
    state = normalize_keys(read_state_dict(path))
    cfg = match_config(state, config, path)
    return build_model(state, cfg)
