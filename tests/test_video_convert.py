"""`convert` of a video export: the keyframe and the non-keyframe graph each become an `.om`,
against the atc emulator in tests/fakes (docs/video.md §4)."""
import json

import pytest

from yolact_edge_cli.steps import convert
from yolact_edge_cli.workspace import Workspace

from .conftest import VIDEO_CONFIG, assert_clean_failure, clone_workspace, fake_env, run_cli
from .fakes import fakeom

pytestmark = pytest.mark.ascend

KEY_SHAPES = "key_p4:{b},256,35,35;key_p5:{b},256,18,18;key_lateral:{b},256,69,69"


@pytest.fixture(scope="module")
def video_exports(exported, tmp_path_factory):
    """A static (batch 1) and a dynamic-batch export of the minimal video config."""
    return {name: exported(tmp_path_factory.mktemp(f"video-{name}") / "ws", VIDEO_CONFIG, dynamic_batch=dynamic)
            for name, dynamic in (("static", False), ("dynamic", True))}


def _clone(ws: Workspace, tmp_path) -> Workspace:
    return clone_workspace(ws, tmp_path / "ws")


def test_both_graphs_become_an_om(ascend, video_exports, tmp_path):
    ws = _clone(video_exports["static"], tmp_path)
    result = convert.run(ws, convert.ConvertOptions(soc_version="Ascend310P3"))
    keyframe_argv, nonkey_argv = result.argv
    assert keyframe_argv[keyframe_argv.index("--input_shape") + 1] == "image:1,3,550,550"
    assert nonkey_argv[nonkey_argv.index("--input_shape") + 1] == "image:1,3,550,550;" + KEY_SHAPES.format(b=1)
    assert nonkey_argv[nonkey_argv.index("--model") + 1].endswith("yolact_edge.nonkey.onnx")
    model = ws.step("convert")["outputs"]["models"][0]
    assert model["om"] == "models/yolact_edge_bs1.om"
    assert model["non_keyframe_om"] == "models/yolact_edge_bs1.nonkey.om"
    assert len(model["non_keyframe_om_sha256"]) == 64
    meta, onnx_bytes = fakeom.read(ws.root / model["non_keyframe_om"])
    assert onnx_bytes == (ws.models_dir / "yolact_edge.nonkey.onnx").read_bytes()
    assert meta["batch"] == 1 and meta["input"] == "image"
    assert (ws.logs_dir / "atc_bs1_nonkey.log").is_file()


def test_a_dynamic_batch_video_model(ascend, video_exports, tmp_path):
    ws = _clone(video_exports["dynamic"], tmp_path)
    result = convert.run(ws, convert.ConvertOptions(soc_version="Ascend310P3", dynamic_batch=(1, 4)))
    nonkey_argv = result.argv[1]
    assert nonkey_argv[nonkey_argv.index("--input_shape") + 1] == "image:-1,3,550,550;" + KEY_SHAPES.format(b=-1)
    assert nonkey_argv[nonkey_argv.index("--dynamic_batch_size") + 1] == "1,4"
    model = ws.step("convert")["outputs"]["models"][0]
    assert model["non_keyframe_om"] == model["om"].replace(".om", ".nonkey.om")
    assert model["om"].startswith("models/yolact_edge_dynamic_linux_")
    assert (ws.root / model["non_keyframe_om"]).is_file()


def test_dry_run_prints_both_commands(video_exports, tmp_path):
    ws = _clone(video_exports["static"], tmp_path)
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend310P3", "--dry-run", "--json")
    assert proc.returncode == 0, proc.stderr
    argv = json.loads(proc.stdout)["argv"]
    assert len(argv) == 2
    assert argv[1][argv[1].index("--output") + 1] == str(ws.models_dir / "yolact_edge_bs1.nonkey")


def test_a_cann_without_gridsample_is_refused_before_atc(video_exports, tmp_path):
    """atc of CANN 7.0 has no GridSample parser (the emulator refuses it with E19010 too); yedge
    says so in one line, and no atc runs."""
    ws = _clone(video_exports["static"], tmp_path)
    home = tmp_path / "cann-7.0"
    home.mkdir()
    (home / "version.cfg").write_text("runtime_running_version=[7.0.0.1:7.0.0]\n")
    env = fake_env(ASCEND_TOOLKIT_HOME=str(home), ASCEND_OPP_PATH="/opp")
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend310P3", env=env)
    assert_clean_failure(proc, "CANN 7.0.0", "GridSample", "yolact_edge.nonkey.onnx", code=2)
    assert "CANN 8.0 or later" in proc.stderr
    assert not list(ws.logs_dir.glob("atc_*.log")) and not list(ws.models_dir.glob("*.om"))


def test_the_emulator_refuses_gridsample_before_8_0(video_exports):
    """The emulator's rule is the one the docs block states (tests/fakes/atc_ops.py)."""
    import onnx

    from yolact_edge_cli.ascend.atc import OPERATOR_SINCE

    from .fakes.atc_ops import later_operators, unsupported

    assert later_operators() == OPERATOR_SINCE
    graph = onnx.load(str(video_exports["static"].models_dir / "yolact_edge.nonkey.onnx"))
    assert unsupported(graph, (7, 0)) == ["GridSample"] and unsupported(graph, (8, 0)) == []


def test_a_missing_non_keyframe_graph_is_named(ascend, video_exports, tmp_path):
    ws = _clone(video_exports["static"], tmp_path)
    (ws.models_dir / "yolact_edge.nonkey.onnx").unlink()
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend310P3")
    assert_clean_failure(proc, "yolact_edge.nonkey.onnx", "non-keyframe graph")


def test_predict_runs_both_om_on_the_npu_with_the_keyframe_schedule(ascend, video_exports, tmp_path):
    """predict --backend ascend: the keyframe .om gives the key state, the non-keyframe .om takes
    it, through ais_bench's InferSession (emulated: each .om's ONNX in onnxruntime); the lines are
    onnxruntime's."""
    from .test_video_predict import write_sequence

    ws = _clone(video_exports["static"], tmp_path)
    convert.run(ws, convert.ConvertOptions(soc_version="Ascend310P3"))
    clip = write_sequence(tmp_path / "clip", 5)
    lines = {}
    for backend in ("ascend", "onnxruntime"):
        proc = run_cli("-w", ws.root, "predict", clip, "--sequence", "--keyframe-interval", "3",
                       "--backend", backend, "-o", tmp_path / backend, "--no-save-video")
        assert proc.returncode == 0, proc.stderr
        jsonl = (tmp_path / backend / "predictions.jsonl").read_text()
        lines[backend] = [json.loads(line) for line in jsonl.splitlines()]
    assert [line["keyframe"] for line in lines["ascend"]] == [True, False, False, True, False]
    for npu, host in zip(lines["ascend"], lines["onnxruntime"]):
        assert [(d["class"], d["box"]) for d in npu["detections"]] == \
            [(d["class"], d["box"]) for d in host["detections"]]


def test_infer_runs_a_video_om_through_the_api_and_refuses_the_cli(ascend, video_exports, tmp_path):
    """infer runs images, each a keyframe: the API gives the layout's outputs alone; the CLI
    would write the key state among them, so it is refused."""
    from .conftest import MINI_ANNOTATIONS, copy_sample_images

    ws = _clone(video_exports["static"], tmp_path)
    convert.run(ws, convert.ConvertOptions(soc_version="Ascend310P3"))
    images = copy_sample_images(tmp_path / "images")
    proc = run_cli("-w", ws.root, "prep", "--images", images, "--annotations", MINI_ANNOTATIONS, "--workers", "1")
    assert proc.returncode == 0, proc.stderr
    proc = run_cli("-w", ws.root, "infer", "--backend", "ascend", "--ais-bench", "api", "--run", "api")
    assert proc.returncode == 0, proc.stderr
    assert len(list((ws.root / "outputs" / "api").glob("0_*.bin"))) == 6  # fpn: P3-P7 and proto
    proc = run_cli("-w", ws.root, "infer", "--backend", "ascend", "--ais-bench", "cli", "--run", "cli")
    assert_clean_failure(proc, "key state", "--ais-bench api")
