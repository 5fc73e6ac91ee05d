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
    return 0


if __name__ == "__main__":
    sys.exit(main())
