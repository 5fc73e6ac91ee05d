"""Masks are computed, kept and encoded only over the window their box can reach: the pixels
equal the reference's whole-image computation (crop, bilinear resize, > 0.5) and the RLEs equal
pycocotools' encoding of the whole masks, byte for byte."""
import numpy as np
import pytest
import torch
import torch.nn.functional as F
from pycocotools import mask as mask_utils

from yolact_edge_cli.metrics.results import encode_masks
from yolact_edge_cli.model.masks import ImageResult, MaskWindow, mask_windows, sigmoid


def _reference_masks(probabilities: torch.Tensor, boxes: torch.Tensor, height: int, width: int) -> np.ndarray:
    """yolact_edge's postprocess: crop [h, w, n] to the boxes padded by one proto pixel, resize
    the whole masks, threshold."""
    h, w, _ = probabilities.shape
    x1, x2 = torch.clamp(torch.min(boxes[:, 0], boxes[:, 2]) * w - 1, min=0), \
        torch.clamp(torch.max(boxes[:, 0], boxes[:, 2]) * w + 1, max=w)
    y1, y2 = torch.clamp(torch.min(boxes[:, 1], boxes[:, 3]) * h - 1, min=0), \
        torch.clamp(torch.max(boxes[:, 1], boxes[:, 3]) * h + 1, max=h)
    cols = torch.arange(w, dtype=torch.float32).view(1, -1, 1)
    rows = torch.arange(h, dtype=torch.float32).view(-1, 1, 1)
    keep = (cols >= x1) & (cols < x2) & (rows >= y1) & (rows < y2)
    cropped = (probabilities * keep.float()).permute(2, 0, 1).contiguous()
    resized = F.interpolate(cropped[None], (height, width), mode="bilinear", align_corners=False)[0]
    return resized.gt(0.5).numpy().astype(np.uint8)


@pytest.mark.parametrize("height, width", [(512, 512), (480, 640), (60, 100), (1, 1), (1000, 700), (1265, 285),
                                           (1048, 1346), (349, 437)])
def test_mask_windows_equal_the_whole_image_computation(height, width):
    g = torch.Generator().manual_seed(height * 7 + width)
    logits = torch.randn(138, 138, 40, generator=g) * 3
    probabilities = torch.from_numpy(sigmoid(logits.numpy()))  # the host's sigmoid, on every pixel
    corners = torch.rand(40, 4, generator=g) * 1.4 - 0.2  # some boxes past the edges, some flipped
    corners[0] = torch.tensor([0.0, 0.0, 1.0, 1.0])     # the whole image
    corners[1] = torch.tensor([0.3, 0.3, 0.3, 0.6])     # no width
    corners[2] = torch.tensor([0.5, 0.5, 0.503, 0.502])  # under one proto pixel
    corners[3] = torch.tensor([-0.5, -0.5, -0.1, 0.2])  # outside the image
    windows = mask_windows(logits.numpy(), corners.numpy(), height, width)
    result = ImageResult(np.zeros(40), np.zeros(40), np.zeros((40, 4)), windows, height, width)
    want = _reference_masks(probabilities, corners, height, width)
    np.testing.assert_array_equal(result.masks, want)
    assert sum(w.bits.size for w in windows) < want.size  # windows, not whole masks


def test_rles_from_windows_equal_pycocotools_on_whole_masks():
    rng = np.random.default_rng(0)
    for _ in range(400):
        height, width = (int(v) for v in rng.integers(1, 30, 2))
        windows = []
        for _ in range(int(rng.integers(1, 6))):
            top, left = int(rng.integers(0, height)), int(rng.integers(0, width))
            h, w = int(rng.integers(0, height - top + 1)), int(rng.integers(0, width - left + 1))
            if rng.random() < 0.3:  # a window that is the whole image: runs cross columns
                top, left, h, w = 0, 0, height, width
            density = rng.choice([0.0, 0.1, 0.5, 0.95, 1.0])
            windows.append(MaskWindow(top, left, (rng.random((h, w)) < density).astype(np.uint8)))
        n = len(windows)
        result = ImageResult(np.zeros(n), np.zeros(n), np.zeros((n, 4)), windows, height, width)
        want = mask_utils.encode(np.asfortranarray(result.masks.transpose(1, 2, 0)))
        assert encode_masks(result) == want
