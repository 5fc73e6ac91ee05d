"""Rebuild tests/data from ../shared/reference: key lists, images, and compact goldens.

The reference's golden .npz files are 15 MB each; tests keep a fixed random sample of 3,000
values of every large tensor, the Detect output and final detections in full, and the final
masks bit-packed. Run from the repository root: python tests/tools/compact_goldens.py
"""
from __future__ import annotations

import shutil
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[2]
SHARED = ROOT.parent / "shared" / "reference"
DATA = ROOT / "tests" / "data"
SAMPLED = ("input", "p3", "p4", "p5", "p6", "p7", "proto", "loc", "conf", "mask_coef", "priors",
           "decoded_boxes")
FULL = ("det0_box", "det0_score", "det0_class", "det0_coef", "det_count", "orig_wh",
        "out0_classes", "out0_scores", "out0_boxes")
SAMPLE_SIZE = 3000
# The video goldens are sampled already (3,000 values per array); tests keep 1,000 of them, the
# keyframe (k0), key-state (stat) and non-keyframe (n1) passes, and the masks bit-packed.
VIDEO_GOLDENS = ("r50vid_seed0_astronaut_shift", "r50vidmin_seed0_astronaut_shift")
VIDEO_SAMPLE_SIZE = 1000
VIDEO_PASSES = ("k0_", "n1_", "stat_", "priors")
VIDEO_FULL = ("frame_wh", "shift_dxdy", "config", "gains")


def compact(src: Path, dst: Path) -> None:
    golden = np.load(src)
    out = {name: golden[name] for name in FULL}
    for name in SAMPLED:
        flat = golden[name].reshape(-1)
        idx = np.sort(np.random.default_rng(0).choice(flat.size, SAMPLE_SIZE, replace=False))
        out[f"{name}__shape"] = np.array(golden[name].shape)
        out[f"{name}__idx"] = idx.astype(np.int64)
        out[f"{name}__val"] = flat[idx]
    masks = golden["out0_masks"]
    out["out0_masks__shape"] = np.array(masks.shape)
    out["out0_masks__bits"] = np.packbits(masks.reshape(masks.shape[0], -1).astype(bool), axis=1)
    np.savez_compressed(dst, **out)


def compact_video(src: Path, dst: Path) -> None:
    golden = np.load(src)
    out = {name: golden[name] for name in VIDEO_FULL}
    for name in golden.files:
        if not name.startswith(VIDEO_PASSES) or name.endswith(("_idx", "_shape")):
            continue
        if name.endswith("_val"):
            base = name[: -len("_val")]
            keep = np.sort(np.random.default_rng(0).choice(
                golden[name].size, min(VIDEO_SAMPLE_SIZE, golden[name].size), replace=False))
            out[f"{base}__shape"] = golden[f"{base}_shape"]
            out[f"{base}__idx"] = golden[f"{base}_idx"][keep]
            out[f"{base}__val"] = golden[name][keep]
        elif name.endswith("_out_masks"):
            masks = golden[name]
            out[f"{name}__shape"] = np.array(masks.shape)
            out[f"{name}__bits"] = np.packbits(masks.reshape(masks.shape[0], -1).astype(bool), axis=1)
        else:
            out[name] = golden[name]
    np.savez_compressed(dst, **out)


def main() -> int:
    for keys in (SHARED / "keys").glob("*.json"):
        shutil.copy(keys, DATA / "keys" / keys.name)
    golden = SHARED / "golden"
    for name in ("astronaut", "coffee"):
        shutil.copy(golden / f"{name}.png", DATA / f"{name}.png")
        compact(golden / f"r50_seed0_{name}.npz", DATA / "golden" / f"r50_seed0_{name}.npz")
        for kind in ("bbox", "mask"):
            shutil.copy(golden / f"r50_seed0_{name}_{kind}.json", DATA / "golden")
    shutil.copytree(golden / "eval_mini", DATA / "golden" / "eval_mini", dirs_exist_ok=True)
    video = SHARED / "video"
    for keys in (video / "keys").glob("*.json"):
        if not keys.name.endswith((".train.json", ".runtime.json")):
            shutil.copy(keys, DATA / "keys" / keys.name)
    shutil.copy(video / "keys" / "yolact_edge_vid_resnet50_config.runtime.json", DATA / "keys")
    for name in VIDEO_GOLDENS:
        compact_video(video / f"{name}.npz", DATA / "golden" / f"{name}.npz")
    return 0


if __name__ == "__main__":
    sys.exit(main())
