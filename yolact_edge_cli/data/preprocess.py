"""The reference's BaseTransform (COCO-eval path): BGR → float32 → 550×550 INTER_LINEAR resize
(aspect ignored) → (x − mean)/std in BGR → RGB → CHW."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from ..choices import InputDtype, InputLayout
from ..errors import InputError
from ..model.config import INPUT_SIZE, MEANS_BGR, STD_BGR

_MEANS = np.array(MEANS_BGR, dtype=np.float32)
_STD = np.array(STD_BGR, dtype=np.float32)


def read_image(path: str | Path) -> np.ndarray:
    """cv2.imread(path) as the reference does (3-channel BGR uint8, EXIF orientation applied),
    refusing truncated JPEG/PNG files before the decoder half-reads them with a bare warning."""
    import cv2

    path = Path(path)
    if not path.is_file():
        raise InputError("image not found", path=path, hint="check the image path")
    try:
        data = np.fromfile(path, dtype=np.uint8)
    except OSError as exc:
        raise InputError(f"cannot read image ({exc.strerror})", path=path,
                         hint="check the file's permissions") from None
    if data.size == 0:
        raise InputError("image is empty (0 bytes)", path=path, hint="replace the file or skip it")
    truncated = _truncation(data.tobytes())
    if truncated:
        raise InputError(f"image is truncated ({truncated})", path=path,
                         hint="replace the file, or leave it out (yedge prep --skip-bad)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)  # imread's default flag: same pixels, same EXIF rotation
    if image is None:
        raise InputError("cannot decode image (corrupt or unsupported format)", path=path,
                         hint="replace the file or skip it")
    return image


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# The next marker: FF fill bytes, then a code that is neither stuffing (00) nor a restart (D0-D7).
_JPEG_MARKER = re.compile(rb"\xff+([^\x00\xd0-\xd7\xff])")
_JPEG_STANDALONE = (0x01, 0xD8)  # TEM and SOI carry no length
_JPEG_EOI = 0xD9


def _truncation(data: bytes) -> str | None:
    """Why a JPEG or PNG ends early, or None (other formats are left to the decoder)."""
    if data.startswith(b"\xff\xd8"):
        return None if _jpeg_complete(data) else "JPEG data ends before its end marker"
    if data.startswith(_PNG_SIGNATURE):
        return None if _png_complete(data) else "PNG data ends before its IEND chunk"
    return None


def _jpeg_complete(data: bytes) -> bool:
    """Walk the marker segments from SOI to EOI; segments are skipped by their length (so an
    EXIF thumbnail inside APP1 is never mistaken for the image's end) and the entropy-coded
    data after each SOS by scanning for the next real marker. Bytes after EOI are allowed."""
    pos = 2
    while True:
        match = _JPEG_MARKER.search(data, pos)
        if match is None:
            return False
        marker, pos = data[match.start(1)], match.end(1)
        if marker == _JPEG_EOI:
            return True
        if marker in _JPEG_STANDALONE:
            continue
        if pos + 2 > len(data):
            return False
        pos += int.from_bytes(data[pos:pos + 2], "big")
        if pos > len(data):
            return False


def _png_complete(data: bytes) -> bool:
    """Walk the chunks (length, type, data, CRC) until a whole IEND chunk; later bytes are allowed."""
    pos = len(_PNG_SIGNATURE)
    while pos + 8 <= len(data):
        length = int.from_bytes(data[pos:pos + 4], "big")
        kind = data[pos + 4:pos + 8]
        pos += 12 + length
        if pos > len(data):
            return False
        if kind == b"IEND":
            return True
    return False


def preprocess(image_bgr: np.ndarray) -> np.ndarray:
    """HWC BGR uint8 → [3, 550, 550] float32 normalised RGB, C-contiguous."""
    import cv2

    resized = cv2.resize(image_bgr.astype(np.float32), (INPUT_SIZE, INPUT_SIZE))
    normalised = (resized - _MEANS) / _STD
    return np.ascontiguousarray(normalised[:, :, ::-1].transpose(2, 0, 1), dtype=np.float32)


INPUT_DTYPES = InputDtype.values()
# Channel layouts of prepared inputs: the model's CHW, or HWC pixels for Ascend AIPP.
INPUT_LAYOUTS = InputLayout.values()


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
