"""The random seed-0 ResNet-50 checkpoint reproduces the reference's tensors and detections."""
import numpy as np
import pytest
import torch

from yolact_edge_cli.data.preprocess import preprocess, read_image
from yolact_edge_cli.model.config import RESNET50
from yolact_edge_cli.model.detect import decode, detect_image, device_detections
from yolact_edge_cli.model.device_detect import DeviceDetect
from yolact_edge_cli.model.head import priors_tensor
from yolact_edge_cli.model.masks import postprocess

from .golden import IMAGES, Golden, assert_detections_match


@pytest.fixture(scope="module", params=IMAGES)
def forward(request, r50_model):
    golden = Golden(request.param)
    image = read_image(golden.path)
    x = preprocess(image)
    with torch.no_grad():
        maps, proto = r50_model.features(torch.from_numpy(x)[None])
        loc, conf, coef = r50_model.heads(maps)
    return golden, image, x, maps, proto, loc, conf, coef


def test_preprocessed_input(forward):
    golden, _, x, *_ = forward
    golden.check("input", x[None], rtol=0, atol=1e-4)


def test_six_export_outputs(forward):
    golden, _, _, maps, proto, *_ = forward
    for level, tensor in enumerate(maps):
        golden.check(f"p{level + 3}", tensor.numpy())
    golden.check("proto", proto.numpy())


def test_heads_and_priors(forward):
    golden, *_, loc, conf, coef = forward
    priors = priors_tensor(RESNET50)
    golden.check("loc", loc.numpy())
    golden.check("conf", conf.numpy(), rtol=0, atol=1e-5)
    golden.check("mask_coef", coef.numpy())
    golden.check("priors", priors.numpy(), rtol=0, atol=0)
    golden.check("decoded_boxes", decode(loc[0].numpy(), priors.numpy())[None])


def test_detect_output(forward):
    golden, *_, loc, conf, coef = forward
    det = detect_image(loc[0], conf[0], coef[0], priors_tensor(RESNET50), RESNET50)
    assert len(det) == int(golden["det_count"][0]) == 100
    np.testing.assert_array_equal(det.classes, golden["det0_class"])
    np.testing.assert_allclose(det.scores, golden["det0_score"], atol=1e-4)
    np.testing.assert_allclose(det.boxes, golden["det0_box"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(det.coefs, golden["det0_coef"], rtol=1e-3, atol=1e-4)


def test_detect_on_the_device_gives_the_reference_detections(forward):
    """The detect layout's DeviceDetect on the reference's heads: its 100 detections."""
    golden, *_, loc, conf, coef = forward
    with torch.no_grad():
        outputs = DeviceDetect(RESNET50, priors_tensor(RESNET50))(loc, conf, coef)
    det = device_detections(*(o[0] for o in outputs))
    assert det is not None and len(det) == int(golden["det_count"][0])
    np.testing.assert_array_equal(det.classes, golden["det0_class"])
    np.testing.assert_allclose(det.scores, golden["det0_score"], atol=1e-4)
    np.testing.assert_allclose(det.boxes, golden["det0_box"], rtol=1e-3, atol=1e-4)
    np.testing.assert_allclose(det.coefs, golden["det0_coef"], rtol=1e-3, atol=1e-4)


def test_final_detections_at_original_size(forward):
    golden, image, _, _, proto, loc, conf, coef = forward
    height, width = image.shape[:2]
    assert [width, height] == list(golden["orig_wh"])
    det = detect_image(loc[0], conf[0], coef[0], priors_tensor(RESNET50), RESNET50)
    result = postprocess(det, proto[0], width, height)
    assert result.masks.shape == (100, height, width)
    assert result.boxes[:, 2].max() <= width and result.boxes[:, 3].max() <= height
    assert_detections_match(result, golden)
