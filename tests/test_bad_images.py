"""Truncated images are reported by name before the decoder half-reads them; whole ones read
exactly as cv2.imread does."""
import json
import struct

import cv2
import numpy as np
import pytest

from yolact_edge_cli.data.preprocess import read_image
from yolact_edge_cli.errors import InputError

from .conftest import DATA, assert_clean_failure, make_coco_set, run_cli

DECODER_WARNINGS = ("Corrupt JPEG", "Premature end", "libpng")


def _coffee():
    return cv2.imread(str(DATA / "coffee.png"))


def _jpeg(image, *params) -> bytes:
    ok, encoded = cv2.imencode(".jpg", image, list(params))
    assert ok
    return encoded.tobytes()


def _with_exif(jpeg: bytes, orientation: int, thumbnail: bytes | None = None) -> bytes:
    """The JPEG with an APP1 EXIF segment right after SOI: IFD0 holds Orientation, and IFD1
    (when `thumbnail` is given) points at a JPEG thumbnail stored inside the segment."""
    ifd1_offset = 8 + 2 + 12 + 4 if thumbnail else 0
    tiff = b"MM\x00*" + struct.pack(">I", 8)
    tiff += struct.pack(">HHHIHH", 1, 0x0112, 3, 1, orientation, 0) + struct.pack(">I", ifd1_offset)
    if thumbnail:
        start = ifd1_offset + 2 + 3 * 12 + 4
        tiff += struct.pack(">H", 3) + struct.pack(">HHIHH", 0x0103, 3, 1, 6, 0)
        tiff += struct.pack(">HHII", 0x0201, 4, 1, start) + struct.pack(">HHII", 0x0202, 4, 1, len(thumbnail))
        tiff += struct.pack(">I", 0) + thumbnail
    payload = b"Exif\x00\x00" + tiff
    return jpeg[:2] + b"\xff\xe1" + struct.pack(">H", len(payload) + 2) + payload + jpeg[2:]


def _thumbnail() -> bytes:
    return _jpeg(cv2.resize(_coffee(), (60, 40)))


def _png(image) -> bytes:
    ok, encoded = cv2.imencode(".png", image)
    assert ok
    return encoded.tobytes()


@pytest.mark.parametrize("kind", ["baseline", "progressive+restarts", "exif thumbnail"])
@pytest.mark.parametrize("keep", ["half", "all but EOI"])
def test_truncated_jpeg_is_an_input_error_naming_the_file(tmp_path, capfd, kind, keep):
    if kind == "baseline":
        data = _jpeg(_coffee())
    elif kind == "progressive+restarts":
        data = _jpeg(_coffee(), cv2.IMWRITE_JPEG_PROGRESSIVE, 1, cv2.IMWRITE_JPEG_RST_INTERVAL, 4)
    else:  # the thumbnail's own EOI must not pass for the image's
        data = _with_exif(_jpeg(_coffee()), 1, _thumbnail())
    path = tmp_path / "cut.jpg"
    path.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-2])
    with pytest.raises(InputError) as info:
        read_image(path)
    assert info.value.message == "image is truncated (JPEG data ends before its end marker)"
    assert info.value.path == str(path)
    assert "--skip-bad" in info.value.hint
    assert not any(w in capfd.readouterr().err for w in DECODER_WARNINGS)


@pytest.mark.parametrize("keep", ["half", "all but IEND"])
def test_truncated_png_is_an_input_error_naming_the_file(tmp_path, capfd, keep):
    data = _png(_coffee())
    path = tmp_path / "cut.png"
    path.write_bytes(data[: len(data) // 2] if keep == "half" else data[:-12])
    with pytest.raises(InputError) as info:
        read_image(path)
    assert info.value.message == "image is truncated (PNG data ends before its IEND chunk)"
    assert info.value.path == str(path)
    assert not any(w in capfd.readouterr().err for w in DECODER_WARNINGS)


@pytest.mark.parametrize("name, make", [
    ("trailing.jpg", lambda: _jpeg(_coffee()) + b"\x00camera data\xff\xd8\xff" * 50),
    ("thumbnail.jpg", lambda: _with_exif(_jpeg(_coffee()), 1, _thumbnail())),
    ("progressive.jpg", lambda: _jpeg(_coffee(), cv2.IMWRITE_JPEG_PROGRESSIVE, 1,
                                      cv2.IMWRITE_JPEG_RST_INTERVAL, 4)),
    ("rotated.jpg", lambda: _with_exif(_jpeg(_coffee()), 6)),
    ("trailing.png", lambda: _png(_coffee()) + b"extra"),
])
def test_whole_images_with_extras_read_like_cv2_imread(tmp_path, capfd, name, make):
    path = tmp_path / name
    path.write_bytes(make())
    image = read_image(path)
    np.testing.assert_array_equal(image, cv2.imread(str(path)))
    assert image.shape == ((600, 400, 3) if name == "rotated.jpg" else (400, 600, 3))
    assert not any(w in capfd.readouterr().err for w in DECODER_WARNINGS)


@pytest.mark.parametrize("name", ["astronaut.png", "coffee.png"])
def test_sample_images_read_byte_identical_to_cv2_imread(name):
    image = read_image(DATA / name)
    assert image.dtype == np.uint8 and image.ndim == 3 and image.shape[2] == 3
    np.testing.assert_array_equal(image, cv2.imread(str(DATA / name)))


def _set_with_truncated_jpeg(tmp_path):
    """Three images, the second a truncated JPEG."""
    folder = tmp_path / "images"
    annotations = make_coco_set(folder, 3)
    coco = json.loads(annotations.read_text())
    coco["images"][1]["file_name"] = "0001.jpg"
    annotations.write_text(json.dumps(coco))
    data = _jpeg(_coffee())
    (folder / "0001.jpg").write_bytes(data[: len(data) // 2])
    return folder, annotations


def test_prep_names_a_truncated_jpeg_and_skip_bad_leaves_it_out(tmp_path):
    folder, annotations = _set_with_truncated_jpeg(tmp_path)
    ws = tmp_path / "ws"
    args = ("prep", "--images", folder, "--annotations", annotations, "--workers", "1")
    proc = run_cli("-w", ws, *args, subprocess_=True)  # libjpeg would print below Python
    assert_clean_failure(proc, "1 image(s) could not be read", str(folder / "0001.jpg"),
                         "image is truncated", code=3)
    assert not any(w in proc.stderr for w in DECODER_WARNINGS), proc.stderr

    proc = run_cli("--json", "-w", ws, *args, "--skip-bad")
    assert proc.returncode == 0, proc.stderr
    assert not any(w in proc.stderr for w in DECODER_WARNINGS), proc.stderr
    result = json.loads(proc.stdout)
    assert [(b["id"], b["file"], b["error"]) for b in result["bad"]] == [
        (101, str(folder / "0001.jpg"), "image is truncated (JPEG data ends before its end marker)")]
    assert result["images"] == 2
    assert json.loads((ws / "inputs" / "ids.json").read_text()) == {"ids": [100, 102]}
