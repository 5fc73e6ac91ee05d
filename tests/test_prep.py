"""`prep`: the recipe's .bin files and ids.json, resumable, and clear about bad input."""
import json
import signal
import subprocess
import sys
import time

import cv2
import numpy as np
import pytest

from yolact_edge_cli.errors import InputError
from yolact_edge_cli.steps import prep
from yolact_edge_cli.workspace import Workspace

from .conftest import DATA, assert_clean_failure, copy_sample_images, make_coco_set, run_cli
from .golden import Golden

MINI = DATA / "golden" / "eval_mini" / "instances_mini.json"


@pytest.fixture
def images(tmp_path):
    return copy_sample_images(tmp_path / "images")


def test_bins_equal_the_golden_input_and_ids_follow_annotation_order(tmp_path, images):
    ws = Workspace(tmp_path / "ws")
    result = prep.run(ws, images, MINI, prep.PrepOptions(workers=2))
    assert result.images == 2 and result.written == 2
    assert json.loads((ws.inputs_dir / "ids.json").read_text()) == {"ids": [2, 1]}
    astronaut = np.fromfile(ws.inputs_dir / "bin_file" / "1.bin", dtype=np.float32)
    assert astronaut.nbytes == 3_630_000
    Golden("astronaut").check("input", astronaut.reshape(1, 3, 550, 550), rtol=0, atol=1e-4)
    coffee = np.fromfile(ws.inputs_dir / "bin_file" / "0.bin", dtype=np.float32)
    Golden("coffee").check("input", coffee.reshape(1, 3, 550, 550), rtol=0, atol=1e-4)
    assert ws.step("prep")["options"] == {"dtype": "float32", "layout": "nchw", "count": 2}


def test_rerun_skips_complete_files_and_redoes_partial_ones(tmp_path, images):
    ws = Workspace(tmp_path / "ws")
    prep.run(ws, images, MINI, prep.PrepOptions(workers=1))
    reference = {p.name: p.read_bytes() for p in (ws.inputs_dir / "bin_file").iterdir()}
    (ws.inputs_dir / "ids.json").unlink()
    (ws.inputs_dir / "bin_file" / "1.bin").write_bytes(b"partial")
    result = prep.run(ws, images, MINI, prep.PrepOptions(workers=1))
    assert result.written == 1 and result.skipped_existing == 1
    assert {p.name: p.read_bytes() for p in (ws.inputs_dir / "bin_file").iterdir()} == reference
    assert prep.run(ws, images, MINI, prep.PrepOptions(workers=1)).written == 0


def test_killed_prep_resumes_with_identical_files(tmp_path):
    folder = tmp_path / "images"
    annotations = make_coco_set(folder, 60)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "yolact_edge_cli", "-w", str(ws), "prep",
                             "--images", str(folder), "--annotations", str(annotations), "--workers", "1"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    bins = ws / "inputs" / "bin_file"
    deadline = time.time() + 120
    while time.time() < deadline and len(list(bins.glob("*.bin"))) < 2:
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert not (ws / "inputs" / "ids.json").exists()
    assert all(p.stat().st_size == 3_630_000 for p in bins.glob("*.bin"))  # no partial .bin
    proc = run_cli("-w", ws, "prep", "--images", folder, "--annotations", annotations, "--workers", "2")
    assert proc.returncode == 0, proc.stderr
    resumed = {p.name: p.read_bytes() for p in bins.glob("*.bin")}
    fresh = Workspace(tmp_path / "fresh")
    prep.run(fresh, folder, annotations, prep.PrepOptions(workers=1))
    assert resumed == {p.name: p.read_bytes() for p in (fresh.inputs_dir / "bin_file").glob("*.bin")}
    assert len(resumed) == 60
    assert not list(bins.glob(".*.tmp"))


def _write_variants(folder):
    """Grayscale, RGBA and 16-bit PNGs, and a corrupt JPEG."""
    bgr = cv2.imread(str(DATA / "coffee.png"))
    cv2.imwrite(str(folder / "gray.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2GRAY))
    cv2.imwrite(str(folder / "rgba.png"), cv2.cvtColor(bgr, cv2.COLOR_BGR2BGRA))
    cv2.imwrite(str(folder / "deep.png"), bgr.astype(np.uint16) * 257)
    ok, jpeg = cv2.imencode(".jpg", bgr)
    (folder / "corrupt.jpg").write_bytes(jpeg.tobytes()[:200])
    names = ["gray.png", "rgba.png", "deep.png", "corrupt.jpg"]
    images = [{"id": i + 1, "file_name": n, "width": 600, "height": 400} for i, n in enumerate(names)]
    anns = [{"id": i + 1, "image_id": i + 1, "category_id": 1, "iscrowd": 0, "bbox": [1, 1, 5, 5],
             "area": 25, "segmentation": [[1, 1, 6, 1, 6, 6]]} for i in range(len(names))]
    path = folder.parent / "variants.json"
    path.write_text(json.dumps({"images": images, "annotations": anns,
                                "categories": [{"id": 1, "name": "person"}]}))
    return path, names


def test_image_variants_behave_like_cv2_imread_and_corrupt_ones_are_reported(tmp_path):
    from yolact_edge_cli.data.preprocess import preprocess

    folder = tmp_path / "images"
    folder.mkdir()
    annotations, names = _write_variants(folder)
    ws = Workspace(tmp_path / "ws")
    with pytest.raises(InputError, match="1 image.*corrupt.jpg"):
        prep.run(ws, folder, annotations, prep.PrepOptions(workers=1))
    assert not (ws.inputs_dir / "ids.json").exists()
    result = prep.run(ws, folder, annotations, prep.PrepOptions(workers=1, skip_bad=True))
    assert [b["file"].endswith("corrupt.jpg") for b in result.bad] == [True]
    assert json.loads((ws.inputs_dir / "ids.json").read_text()) == {"ids": [1, 2, 3]}
    for pos, name in enumerate(names[:3]):
        expected = preprocess(cv2.imread(str(folder / name)))
        got = np.fromfile(ws.inputs_dir / "bin_file" / f"{pos}.bin", dtype=np.float32)
        np.testing.assert_array_equal(got.reshape(3, 550, 550), expected)
    assert sorted(p.name for p in (ws.inputs_dir / "bin_file").iterdir()) == ["0.bin", "1.bin", "2.bin"]


def test_uint8_inputs(tmp_path, images):
    ws = Workspace(tmp_path / "ws")
    prep.run(ws, images, MINI, prep.PrepOptions(dtype="uint8", limit=1))
    data = np.fromfile(ws.inputs_dir / "bin_file" / "0.bin", dtype=np.uint8)
    assert data.size == 3 * 550 * 550
    assert ws.step("prep")["options"]["dtype"] == "uint8"
    # un-normalising the float32 input gives the same pixels within rounding
    float_ws = Workspace(tmp_path / "f")
    prep.run(float_ws, images, MINI, prep.PrepOptions(limit=1))
    normalised = np.fromfile(float_ws.inputs_dir / "bin_file" / "0.bin", dtype=np.float32).reshape(3, 550, 550)
    pixels = normalised * np.array([58.40, 57.12, 57.38])[:, None, None] + \
        np.array([123.68, 116.78, 103.94])[:, None, None]
    assert np.abs(pixels - data.reshape(3, 550, 550)).max() <= 0.51


@pytest.mark.parametrize("content, fragment", [
    (None, "annotation file not found"),
    ("{not json", "not valid JSON"),
    ('{"info": {}}', "not a COCO instances file"),
])
def test_bad_annotation_files(tmp_path, images, content, fragment):
    path = tmp_path / "ann.json"
    if content is not None:
        path.write_text(content)
    proc = run_cli("-w", tmp_path / "ws", "prep", "--images", images, "--annotations", path)
    assert_clean_failure(proc, str(path), fragment, code=3)


def test_missing_image_folder(tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "prep", "--images", tmp_path / "nope", "--annotations", MINI)
    assert_clean_failure(proc, "image folder not found", code=3)
