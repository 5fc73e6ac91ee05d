import json

import pytest

from yolact_edge_cli.model.config import CONFIGS
from yolact_edge_cli.model.yolact import Yolact

from .conftest import DATA

# The reference key lists measured (the R-101 video configs' follow from them: test_video_model)
MEASURED = sorted(p.stem for p in (DATA / "keys").glob("*_config.json"))


def test_every_measured_list_is_a_config():
    assert set(MEASURED) <= set(CONFIGS) and len(MEASURED) == 5


@pytest.mark.parametrize("name", MEASURED)
def test_state_dict_matches_reference_keys_and_shapes(name):
    reference = json.loads((DATA / "keys" / f"{name}.json").read_text())
    ours = [[key, list(value.shape)] for key, value in Yolact(CONFIGS[name]).state_dict().items()]
    assert ours == reference


def test_reference_key_counts():
    counts = {name: len(json.loads((DATA / "keys" / f"{name}.json").read_text())) for name in MEASURED}
    assert counts == {"yolact_edge_resnet50_config": 354, "yolact_edge_config": 660,
                      "yolact_edge_mobilenetv2_config": 348, "yolact_edge_vid_resnet50_config": 391,
                      "yolact_edge_vid_minimal_resnet50_config": 387}
