"""The reference's BaseTransform (COCO-eval path): BGR → float32 → 550×550 INTER_LINEAR resize
(aspect ignored) → (x − mean)/std in BGR → RGB → CHW."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..errors import InputError
from ..model.config import INPUT_SIZE, MEANS_BGR, STD_BGR

_MEANS = np.array(MEANS_BGR, dtype=np.float32)
_STD = np.array(STD_BGR, dtype=np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """cv2.imread(path) as the reference does (3-channel BGR uint8, EXIF orientation applied)."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError("image not found", path=path, hint="check the image path")
    image = cv2.imread(str(path))
    if image is None:
        raise InputError("cannot decode image (corrupt or unsupported format)", path=path,
                         hint="replace the file or skip it")
    return image


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 → [3, 550, 550] float32 normalised RGB, C-contiguous."""
    import cv2

    resized = cv2.resize(image_bgr.astype(np.float32), (INPUT_SIZE, INPUT_SIZE))
    normalised = (resized - _MEANS) / _STD
    return np.ascontiguousarray(normalised[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)


INPUT_DTYPES = ("float32", "uint8")
# Channel layouts of prepared inputs: the model's CHW, or HWC pixels for Ascend AIPP.
INPUT_LAYOUTS = ("nchw", "nhwc")


def sample_shape(layout: str = "nchw") -> tuple[int, int, int]:
    return (INPUT_SIZE, INPUT_SIZE, 3) if layout == "nhwc" else (3, INPUT_SIZE, INPUT_SIZE)


def preprocess_uint8(image_bgr: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 → [3, 550, 550] uint8 RGB pixels, resized like `preprocess`; the model (or
    AIPP on Ascend) does the normalisation."""
    import cv2

    resized = cv2.resize(image_bgr.astype(np.float32), (INPUT_SIZE, INPUT_SIZE))
    pixels = np.clip(np.rint(resized), 0, 255).astype(np.uint8)
    return np.ascontiguousarray(pixels[:, :, ::-1].transpose(2, 0, 1))


def prepare(image_bgr: np.ndarray, dtype: str, layout: str = "nchw") -> np.ndarray:
    tensor = preprocess_uint8(image_bgr) if dtype == "uint8" else preprocess(image_bgr)
    return np.ascontiguousarray(tensor.transpose(1, 2, 0)) if layout == "nhwc" else tensor
