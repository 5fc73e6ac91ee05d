"""`yedge show`: pictures with the detections drawn, ground truth beside, a contact sheet."""
import json

import cv2
import numpy as np
import pytest
from pycocotools import mask as mask_utils

from yolact_edge_cli.steps import evaluate

from .conftest import DATA, assert_clean_failure, run_cli


def test_show_draws_masks_and_ground_truth(tmp_path, prepared):
    assert_clean_failure(run_cli("-w", tmp_path / "empty", "show"), "no evaluation results", "yedge eval", code=3)
    ws = prepared(tmp_path / "ws")  # the seed-0 ResNet-50 on the two sample photos
    evaluate.run(ws, evaluate.EvalOptions(workers=1))
    proc = run_cli("-w", ws.root, "--json", "show", "--gt", "--score-threshold", "0.45")
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert [p.rsplit("/", 1)[1] for p in result["pictures"]] == ["2.png", "1.png"]
    assert result["detections_drawn"] > 0
    sheet = cv2.imread(result["contact_sheet"])
    assert sheet is not None and sheet.shape[1] == 2 * 320
    # inside the top astronaut detection's mask the picture's colours differ from the photo
    masks = json.loads((ws.results_dir / "mask_detections.json").read_text())
    top = max((m for m in masks if m["image_id"] == 1), key=lambda m: m["score"])
    mask = mask_utils.decode({"size": top["segmentation"]["size"],
                              "counts": top["segmentation"]["counts"].encode()}).astype(bool)
    assert mask.sum() > 100
    original = cv2.imread(str(DATA / "astronaut.png"))
    picture = cv2.imread(str(ws.results_dir / "vis" / "1.png"))
    assert picture.shape == (512, 512 * 2 + 8, 3)  # detections | ground truth
    drawn = picture[:, :512]
    assert np.abs(drawn[mask].astype(int) - original[mask]).mean() > 10
    untouched = ~np.zeros_like(mask)
    assert (drawn[untouched] == original[untouched]).any()


@pytest.mark.parametrize("shape, fill", [((1, 1), 0.5), ((3, 2), 0.0), ((3, 2), 1.0), ((120, 160), 0.3),
                                         ((481, 641), 0.7), ((1080, 1920), 0.01)])
def test_our_rle_decoding_is_pycocotools(shape, fill):
    """draw.decode_rle (no numpy __array__ fallback) gives pycocotools' masks, bit for bit."""
    from yolact_edge_cli.draw import decode_rle

    rng = np.random.default_rng(shape[0])
    mask = (rng.random(shape) < fill).astype(np.uint8)
    mask[: shape[0] // 2] = np.roll(mask[: shape[0] // 2], 3)  # long runs as well as short ones
    rle = mask_utils.encode(np.asfortranarray(mask))
    text = {"size": rle["size"], "counts": rle["counts"].decode("ascii")}
    assert np.array_equal(decode_rle(text), mask) and np.array_equal(decode_rle(rle), mask_utils.decode(rle))
