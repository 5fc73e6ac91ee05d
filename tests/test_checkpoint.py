"""Loading, renaming, validating and generating checkpoints."""
import zlib

import numpy as np
import pytest
import torch

from yolact_edge_cli.errors import InputError
from yolact_edge_cli.model import checkpoint as ck
from yolact_edge_cli.model.config import CONFIGS, MOBILENETV2, RESNET50
from yolact_edge_cli.model.random_checkpoint import random_state_dict


def test_random_checkpoint_follows_the_rule():
    state = random_state_dict(RESNET50, seed=3, conf_gain=2.0, mask_bias=0.3, bg_bias=7.0)

    def n(key, shape):
        return np.random.default_rng(3 + zlib.crc32(key.encode())).standard_normal(size=shape)

    key = "backbone.layers.1.0.conv2.weight"  # [128, 128, 3, 3]
    np.testing.assert_array_equal(state[key].numpy(),
                                  (n(key, (128, 128, 3, 3)) * np.sqrt(2 / (128 * 9))).astype(np.float32))
    key = "prediction_layers.0.conf_layer.weight"
    np.testing.assert_array_equal(state[key].numpy(),
                                  (n(key, (243, 256, 3, 3)) * np.sqrt(2 / (256 * 9)) * 2).astype(np.float32))
    key = "prediction_layers.0.conf_layer.bias"
    expected = 0.01 * n(key, (243,)) + 7.0 * (np.arange(243) % 81 == 0)
    np.testing.assert_array_equal(state[key].numpy(), expected.astype(np.float32))
    key = "prediction_layers.0.mask_layer.bias"
    np.testing.assert_array_equal(state[key].numpy(), (0.01 * n(key, (96,)) + 0.3).astype(np.float32))
    np.testing.assert_array_equal(state["backbone.bn1.running_var"].numpy(),
                                  (1 + np.abs(n("backbone.bn1.running_var", (64,)))).astype(np.float32))
    np.testing.assert_array_equal(state["backbone.bn1.weight"].numpy(),
                                  (0.5 + 0.1 * n("backbone.bn1.weight", (64,))).astype(np.float32))
    assert state["backbone.bn1.num_batches_tracked"].dtype == torch.int64
    assert int(state["backbone.bn1.num_batches_tracked"]) == 0
    # depthwise conv: fan-in is 1·3·3
    mb = random_state_dict(MOBILENETV2, seed=0)
    key = "backbone.layers.1.0.conv.0.0.weight"
    np.testing.assert_array_equal(mb[key].numpy(),
                                  (np.random.default_rng(zlib.crc32(key.encode())).standard_normal((32, 1, 3, 3))
                                   * np.sqrt(2 / 9)).astype(np.float32))


def test_random_checkpoint_is_deterministic_and_seeded():
    a = random_state_dict(MOBILENETV2, seed=0)
    b = random_state_dict(MOBILENETV2, seed=0)
    c = random_state_dict(MOBILENETV2, seed=1)
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["proto_net.0.weight"], c["proto_net.0.weight"])


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_auto_config_picks_the_matching_one(name, checkpoint):
    state = ck.normalize_keys(ck.read_state_dict(checkpoint(name)))
    assert ck.match_config(state, "auto", "x.pth").name == name


def test_old_yolact_key_names_load_to_the_same_model(checkpoint, tmp_path, r50_model):
    state = ck.read_state_dict(checkpoint())
    old = {}
    for key, value in state.items():
        key = key.replace("fpn_phase_1.", "fpn.").replace("fpn_phase_2.", "fpn.")
        old[key] = value
    # old checkpoints can carry a third downsample layer and no semantic-seg conv
    old["fpn.downsample_layers.2.weight"] = torch.zeros(256, 256, 3, 3)
    old = {k: v for k, v in old.items() if not k.startswith("semantic_seg_conv")}
    path = tmp_path / "yolact_old.pth"
    torch.save(old, path)
    net = ck.load_model(path, "auto")
    x = torch.randn(1, 3, 550, 550, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        ours, ref = net.features(x), r50_model.features(x)
    for a, b in zip(ours[0], ref[0]):
        assert torch.equal(a, b)
    assert torch.equal(ours[1], ref[1])


def test_missing_and_misshaped_keys_are_errors_naming_keys(checkpoint, tmp_path):
    state = ck.read_state_dict(checkpoint())
    del state["proto_net.0.weight"]
    state["fpn_phase_2.pred_layers.0.bias"] = torch.zeros(3)
    path = tmp_path / "broken.pth"
    torch.save(state, path)
    with pytest.raises(InputError) as info:
        ck.load_model(path, "yolact_edge_resnet50_config")
    message = info.value.one_line()
    assert "missing proto_net.0.weight" in message
    assert "shape of fpn_phase_2.pred_layers.0.bias" in message
    with pytest.raises(InputError, match="matches no YolactEdge config"):
        ck.load_model(path, "auto")


def test_nested_state_dict_and_fp16_weights_load(checkpoint, tmp_path):
    state = {k: (v.half() if v.is_floating_point() else v)
             for k, v in ck.read_state_dict(checkpoint("yolact_edge_mobilenetv2_config")).items()}
    path = tmp_path / "nested.pth"
    torch.save({"model": state}, path)
    net = ck.load_model(path)
    assert net.cfg.name == "yolact_edge_mobilenetv2_config"
    assert net.proto_net[0].weight.dtype == torch.float32


def test_random_weights_file_is_byte_identical_whatever_the_path(tmp_path):
    import hashlib

    from yolact_edge_cli.steps import random_weights

    config = "yolact_edge_mobilenetv2_config"
    first = random_weights.run(tmp_path / "a.pth", config=config)
    first_bytes = (tmp_path / "a.pth").read_bytes()
    again = random_weights.run(tmp_path / "a.pth", config=config)
    elsewhere = random_weights.run(tmp_path / "sub" / "other-name.pth", config=config)
    assert (tmp_path / "a.pth").read_bytes() == first_bytes
    assert (tmp_path / "sub" / "other-name.pth").read_bytes() == first_bytes
    assert first["sha256"] == again["sha256"] == elsewhere["sha256"]
    assert first["sha256"] == hashlib.sha256(first_bytes).hexdigest()
    assert ck.load_model(tmp_path / "a.pth").cfg.name == config


def _data_parallel_copy(checkpoint, tmp_path, keys_to_prefix=None):
    state = ck.read_state_dict(checkpoint("yolact_edge_mobilenetv2_config"))
    prefixed = {(f"module.{k}" if keys_to_prefix is None or k in keys_to_prefix else k): v
                for k, v in state.items()}
    path = tmp_path / "data_parallel.pth"
    torch.save(prefixed, path)
    return path, state


def test_data_parallel_checkpoint_loads_with_one_note(checkpoint, tmp_path, capsys):
    path, state = _data_parallel_copy(checkpoint, tmp_path)
    net = ck.load_model(path)
    again = ck.load_model(path)
    plain = ck.load_model(checkpoint("yolact_edge_mobilenetv2_config"))
    assert net.cfg.name == "yolact_edge_mobilenetv2_config"
    for ours in (net.state_dict(), again.state_dict()):
        reference = plain.state_dict()
        assert list(ours) == list(reference)
        assert all(torch.equal(ours[k], reference[k]) for k in reference)
    notes = [line for line in capsys.readouterr().err.splitlines() if line.startswith("note:")]
    assert notes == [f"note: {path}: stripped the 'module.' prefix of a DataParallel checkpoint"]


def test_partly_prefixed_checkpoint_is_not_silently_fixed(checkpoint, tmp_path, capsys):
    keys = list(ck.read_state_dict(checkpoint("yolact_edge_mobilenetv2_config")))
    path, _ = _data_parallel_copy(checkpoint, tmp_path, keys_to_prefix=set(keys[:10]))
    with pytest.raises(InputError, match="10 missing, 0 mis-shaped, 10 unexpected"):
        ck.load_model(path, "yolact_edge_mobilenetv2_config")
    assert "note:" not in capsys.readouterr().err
