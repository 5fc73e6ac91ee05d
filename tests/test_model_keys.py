import json

import pytest

from yolact_edge_cli.model.config import CONFIGS
from yolact_edge_cli.model.yolact import Yolact

from .conftest import DATA


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_state_dict_matches_reference_keys_and_shapes(name):
    reference = json.loads((DATA / "keys" / f"{name}.json").read_text())
    ours = [[key, list(value.shape)] for key, value in Yolact(CONFIGS[name]).state_dict().items()]
    assert ours == reference


def test_reference_key_counts():
    counts = {name: len(json.loads((DATA / "keys" / f"{name}.json").read_text())) for name in CONFIGS}
    assert counts == {"yolact_edge_resnet50_config": 354, "yolact_edge_config": 660,
                      "yolact_edge_mobilenetv2_config": 348}
