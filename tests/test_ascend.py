"""Ascend: npu-smi parsing, atc driving, and the whole workflow through ais_bench — all against
the faithful emulators in tests/fakes (test-only; they wrap onnxruntime)."""
import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest

from yolact_edge_cli.ascend import aisbench, npu_smi
from yolact_edge_cli.ascend.atc import AtcJob
from yolact_edge_cli.errors import EnvironmentProblem, InputError, UsageError
from yolact_edge_cli.steps import bench, convert, evaluate, export, infer, prep
from yolact_edge_cli.workspace import Workspace

from .conftest import (
    DATA,
    FAKES,
    MINI_ANNOTATIONS,
    assert_clean_failure,
    clone_workspace,
    copy_sample_images,
    fake_env,
    own_copy,
    run_cli,
)

pytestmark = pytest.mark.ascend


@pytest.mark.parametrize("variant, soc", [
    ("310P3", "Ascend310P3"), ("310P3-duo", "Ascend310P3"), ("310", "Ascend310"),
    ("310-narrow", "Ascend310"), ("310B4", "Ascend310B4"), ("910B3", "Ascend910B3"),
    ("910B", "Ascend910B4"), ("A3", "Ascend910_9392"),
])
def test_soc_from_every_npu_smi_table(ascend, variant, soc):
    ascend.setenv("FAKE_NPU_SMI", variant)
    assert npu_smi.detect_soc() == soc


def test_npu_smi_table_details():
    duo = npu_smi.parse_info((FAKES / "npu_smi" / "310P3-duo.txt").read_text())
    assert [(c.npu, c.chip, c.device) for c in duo] == [(1, 0, 0), (1, 1, 1), (2, 0, 2), (2, 1, 3)]
    b3 = npu_smi.parse_info((FAKES / "npu_smi" / "910B3.txt").read_text())
    assert [(c.npu, c.chip, c.device, c.name) for c in b3] == [(0, 0, None, "910B3")]
    assert npu_smi.parse_info((FAKES / "npu_smi" / "310.txt").read_text())[0].health == "OK"
    assert npu_smi.soc_from_name("910 B4") == "Ascend910B4"


@pytest.mark.parametrize("variant, fragment", [
    ("mixed", "different NPUs (Ascend310, Ascend310P3)"),
    ("garbage", "could not read any NPU"),
    ("fail", "npu-smi info failed (exit 255"),
])
def test_npu_smi_problems(ascend, variant, fragment):
    ascend.setenv("FAKE_NPU_SMI", variant)
    with pytest.raises(EnvironmentProblem, match=fragment.replace("(", r"\(").replace(")", r"\)")) as info:
        npu_smi.detect_soc()
    assert "--soc-version" in info.value.hint


def test_no_npu_smi_asks_for_soc_version(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(EnvironmentProblem, match="npu-smi not found"):
        npu_smi.detect_soc()


@pytest.mark.parametrize("batch", [1, 4, 8])
def test_atc_argv_is_the_recipes_command(batch):
    job = AtcJob(Path("yolact_edge.onnx"), Path(f"models/yolact_edge_bs{batch}"), "Ascend310P3", batch_size=batch)
    assert job.argv() == ["atc", "--model", "yolact_edge.onnx", "--framework", "5", "--output",
                          f"models/yolact_edge_bs{batch}", "--log", "error", "--soc_version", "Ascend310P3",
                          "--input_shape", f"image:{batch},3,550,550"]


def test_atc_argv_dynamic_batch():
    job = AtcJob(Path("m.onnx"), Path("out"), "Ascend910B3", dynamic_batch=(1, 2, 4, 8))
    assert job.argv()[-4:] == ["--input_shape", "image:-1,3,550,550", "--dynamic_batch_size", "1,2,4,8"]


MBV2 = "yolact_edge_mobilenetv2_config"


@pytest.fixture(scope="module")
def onnx_workspace(tmp_path_factory, prepared):
    """A workspace with a dynamic-batch export of the seed-0 MobileNetV2 (which architecture runs
    is not the point here) and the two sample images prepared and run through onnxruntime."""
    return prepared(tmp_path_factory.mktemp("ascend") / "ws", MBV2, dynamic_batch=True)


@pytest.fixture(scope="module")
def r50_workspace(tmp_path_factory, prepared):
    """The same with the seed-0 ResNet-50, whose mAP on the two photos is the reference's golden."""
    return prepared(tmp_path_factory.mktemp("ascend-r50") / "ws", dynamic_batch=True)


def _clone(onnx_workspace, tmp_path) -> Workspace:
    return clone_workspace(onnx_workspace, tmp_path / "ws")


def test_convert_dry_run_needs_no_npu(onnx_workspace, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    result = convert.run(onnx_workspace, convert.ConvertOptions(soc_version="Ascend310P3", batch_sizes=(1, 4, 8), dry_run=True))
    assert [argv[argv.index("--input_shape") + 1] for argv in result.argv] == \
        ["image:1,3,550,550", "image:4,3,550,550", "image:8,3,550,550"]
    assert onnx_workspace.step("convert") is None


def test_convert_detects_the_soc_and_records_models(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    result = convert.run(ws, convert.ConvertOptions(batch_sizes=(1, 4)))
    assert result.soc_version == "Ascend310P3"
    models = ws.step("convert")["outputs"]["models"]
    assert [m["om"] for m in models] == ["models/yolact_edge_bs1.om", "models/yolact_edge_bs4.om"]
    assert all(m["soc_version"] == "Ascend310P3" and len(m["onnx_sha256"]) == 64 for m in models)
    assert "ATC run success" in (ws.logs_dir / "atc_bs4.log").read_text()
    dynamic = convert.run(ws, convert.ConvertOptions(soc_version="Ascend310P3", dynamic_batch=(1, 2, 4)))
    om = dynamic.models[0]["om"]
    assert om.startswith("models/yolact_edge_dynamic_linux_") and om.endswith(".om")
    assert len(ws.step("convert")["outputs"]["models"]) == 3


@pytest.mark.parametrize("mode, fragment", [
    ("fail", "E19999: Internal Error!"),
    ("no-success", "never printed 'ATC run success'"),
    ("no-om", "wrote no yolact_edge_bs1*.om"),
])
def test_atc_failures_record_nothing(ascend, onnx_workspace, tmp_path, mode, fragment):
    ws = _clone(onnx_workspace, tmp_path)
    proc = run_cli("-w", ws.root, "convert", env={**fake_env(FAKE_ATC_MODE=mode)})
    line = assert_clean_failure(proc, fragment)
    assert "atc_bs1.log" in line or "models" in line
    assert ws.step("convert") is None


def test_atc_not_installed(onnx_workspace, tmp_path):
    env = {"PATH": str(Path(sys.executable).parent), "ASCEND_TOOLKIT_HOME": str(tmp_path / "none")}
    proc = run_cli("-w", onnx_workspace.root, "convert", "--soc-version", "Ascend310P3", env=env)
    assert_clean_failure(proc, "atc (the Ascend model compiler) was not found", "set_env.sh", code=4)


def test_atc_rejects_unknown_soc(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend999", env=fake_env())
    assert_clean_failure(proc, "E10001", "soc_version")


def _outputs(run_dir: Path) -> dict:
    return {p.name: np.fromfile(p, dtype=np.float32) for p in sorted(run_dir.glob("*.bin"))}


def _assert_same_outputs(a: Path, b: Path) -> None:
    ours, theirs = _outputs(a), _outputs(b)
    assert ours.keys() == theirs.keys() and len(ours) == 12
    for name in ours:
        assert np.abs(ours[name] - theirs[name]).max() <= 1e-4, name


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_workflow_through_ais_bench_equals_onnxruntime(ascend, r50_workspace, tmp_path, mode):
    ws = _clone(r50_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1, 4)))
    result = infer.run(ws, infer.InferOptions(backend="ascend", device="0", run_name="npu", ais_bench=mode, batch_size=4))
    assert result.backend == "ascend" and result.batch_size == 4 and result.computed == 2
    _assert_same_outputs(ws.outputs_dir / "npu", ws.outputs_dir / "onnxruntime")
    summary = json.loads((ws.outputs_dir / "npu_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 1  # two images, one padded batch of 4
    assert ws.step("infer")["options"]["ais_bench"] == mode
    assert not list(ws.outputs_dir.glob("npu_device*"))  # staging folders are gone
    ours = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    reference = json.loads((DATA / "golden" / "eval_mini" / "fast_yolact_ap.json").read_text())
    for kind in ("box", "mask"):
        assert ours.yolact_ap[kind]["all"] == pytest.approx(reference[kind]["all"], abs=1e-4)
    theirs = evaluate.run(ws, evaluate.EvalOptions(workers=1), outputs=ws.outputs_dir / "onnxruntime")
    assert ours.coco["bbox"]["stats"] == pytest.approx(theirs.coco["bbox"]["stats"], abs=1e-6)
    rows = bench.run(ws, bench.BenchOptions(backend="ascend", batch_sizes=(1, 4), loop=3, warmup=1, ais_bench=mode)).rows
    assert [r.batch_size for r in rows] == [1, 4] and all(r.throughput > 0 for r in rows)
    assert all(r.latency_p90_ms is not None for r in rows)  # from per-run times (API or summary JSON)


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_multi_device_run_merges_into_one_folder(ascend, onnx_workspace, tmp_path, mode):
    ascend.setenv("FAKE_NPU_DEVICES", "0,1")
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    result = infer.run(ws, infer.InferOptions(backend="ascend", device="0,1", run_name="multi", ais_bench=mode))
    assert result.device == "npu:0,1" and result.computed == 2
    _assert_same_outputs(ws.outputs_dir / "multi", ws.outputs_dir / "onnxruntime")
    summary = json.loads((ws.outputs_dir / "multi_summary.json").read_text())
    assert summary["NPU_compute_time"]["count"] == 2


def test_soc_mismatch_is_refused(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(soc_version="Ascend910B3"))
    proc = run_cli("-w", ws.root, "infer", "--backend", "ascend", env=fake_env())
    assert_clean_failure(proc, "built for Ascend910B3", "Ascend310P3", "--soc-version Ascend310P3", code=3)


def test_ais_bench_constraints_are_checked_first(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws)
    own_copy(ws.inputs_dir / "bin_file" / "0.bin").chmod(0o666)
    with pytest.raises(InputError, match="writable by group or others"):
        infer.run(ws, infer.InferOptions(backend="ascend"))
    (ws.inputs_dir / "bin_file" / "0.bin").chmod(0o644)
    spaced = Workspace(tmp_path / "a space")
    import shutil

    shutil.copytree(ws.root, spaced.root)
    with pytest.raises(InputError, match="only A-Z a-z 0-9"):
        infer.run(spaced, infer.InferOptions(backend="ascend", model=spaced.models_dir / "yolact_edge_bs1.om"))


def test_fp16_outputs_are_read_by_eval(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(atc_args=("--output_type=FP16",)))
    infer.run(ws, infer.InferOptions(backend="ascend", run_name="fp16", ais_bench="cli"))
    assert (ws.outputs_dir / "fp16" / "0_0.bin").stat().st_size == 256 * 69 * 69 * 2
    result = evaluate.run(ws, evaluate.EvalOptions(workers=1))
    assert result.output_dtype == "float16" and result.images == 2
    reference = evaluate.run(ws, evaluate.EvalOptions(workers=1), outputs=ws.outputs_dir / "onnxruntime")
    assert abs(result.yolact_ap["mask"]["all"] - reference.yolact_ap["mask"]["all"]) < 5


def test_bench_parses_the_printed_summary_alone(tmp_path):
    stdout = """[INFO] -----------------Performance Summary------------------
[INFO] NPU_compute_time (ms): min = 2.4560000896453857, max = 2.4560000896453857, mean = 2.4560000896453857, median = 2.4560000896453857, percentile(99%) = 2.4560000896453857
[INFO] throughput 1000*batchsize.mean(1)/NPU_compute_time.mean(2.4560000896453857): 407.16610891670894
"""
    parsed = aisbench.parse_summary(stdout)
    assert parsed["throughput"] == pytest.approx(407.16610891670894)
    row = bench.ascend.row_from_aisbench(1, 100, stdout, tmp_path / "absent_summary.json")
    assert row.throughput == pytest.approx(407.17, abs=0.01) and row.latency_p90_ms is None
    assert row.latency_p99_ms == pytest.approx(2.46, abs=0.01)
    with pytest.raises(EnvironmentProblem):
        aisbench.parse_summary("[INFO] nothing here")


def test_cli_convert_and_ascend_infer_end_to_end(onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    env = fake_env()
    proc = run_cli("-w", ws.root, "convert", "--batch-sizes", "1", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Ascend310P3" in proc.stdout
    proc = run_cli("-w", ws.root, "--json", "infer", "--backend", "ascend", "--ais-bench", "cli", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["device"] == "npu:0"
    proc = run_cli("-w", ws.root, "--json", "bench", "--backend", "ascend", "--loop", "2", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["rows"][0]["batch_size"] == 1


def test_atc_found_in_the_toolkit_with_its_environment_and_version(onnx_workspace, tmp_path):
    """No atc on PATH: $ASCEND_TOOLKIT_HOME/bin/atc is used, set_env.sh is applied for it, and
    the CANN version from version.cfg is recorded."""
    import shutil

    ws = _clone(onnx_workspace, tmp_path)
    home = tmp_path / "Ascend" / "ascend-toolkit" / "latest"
    (home / "bin").mkdir(parents=True)
    shutil.copy(FAKES / "bin" / "atc", home / "bin" / "atc")
    (home / "version.cfg").write_text("runtime_running_version=[7.6.0.1.220:8.0.0]\n")
    (home.parent / "set_env.sh").write_text(f"export ASCEND_OPP_PATH={home}/opp\n")
    wrapper = home / "bin" / "atc"
    # The toolkit's atc is a copy, so it finds fakeom through an absolute path instead.
    # It also reports the variable set_env.sh exports, to show atc ran in that environment.
    wrapper.write_text(wrapper.read_text().replace(
        "Path(__file__).resolve().parent.parent", repr(str(FAKES))).replace(
        'print("ATC start working now, please wait for a moment.")',
        'print("ATC start working now, please wait for a moment.")\n'
        '    print("opp=" + os.environ.get("ASCEND_OPP_PATH", ""))'))
    env = {"PATH": str(Path(sys.executable).parent), "ASCEND_TOOLKIT_HOME": str(home),
           "FAKE_NPU_SMI": "310P3"}
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend310P3", env=env)
    assert proc.returncode == 0, proc.stderr
    model = ws.step("convert")["outputs"]["models"][0]
    assert model["cann_version"] == "8.0.0"
    log = (ws.logs_dir / "atc_bs1.log").read_text()
    assert log.startswith(str(home / "bin" / "atc"))
    assert f"opp={home}/opp" in log


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_aipp_model_takes_uint8_hwc_pixels(ascend, onnx_workspace, tmp_path, mode):
    """--aipp: the .om normalises on the device; fed `prep --dtype uint8 --layout nhwc` pixels it
    gives what the float32 ONNX gives on those pixels normalised on the host."""
    import onnxruntime as ort

    from yolact_edge_cli.model.config import MEANS_BGR, STD_BGR

    ws = _clone(onnx_workspace, tmp_path)
    result = convert.run(ws, convert.ConvertOptions(aipp=True))
    assert "--insert_op_conf" in result.argv[0]
    config = (ws.models_dir / "aipp.cfg").read_text()
    assert "input_format : RGB888_U8" in config and "min_chn_0 : 123.68" in config
    model = ws.step("convert")["outputs"]["models"][0]
    assert (model["input_dtype"], model["input_layout"], model["aipp"]) == ("uint8", "nhwc", True)
    with pytest.raises(InputError, match="takes uint8 nhwc inputs but they were prepared as float32 nchw"):
        infer.run(ws, infer.InferOptions(backend="ascend", ais_bench=mode))
    prep.run(ws, copy_sample_images(tmp_path / "images"), MINI_ANNOTATIONS, prep.PrepOptions(workers=1, dtype="uint8", layout="nhwc"))
    infer.run(ws, infer.InferOptions(backend="ascend", run_name="aipp", ais_bench=mode))
    pixels = np.fromfile(ws.inputs_dir / "bin_file" / "1.bin", np.uint8).reshape(550, 550, 3)
    normalised = ((pixels.astype(np.float32) - np.float32(MEANS_BGR[::-1])) / np.float32(STD_BGR[::-1]))
    session = ort.InferenceSession(str(ws.default_onnx), providers=["CPUExecutionProvider"])
    expected = session.run(None, {"image": np.ascontiguousarray(normalised.transpose(2, 0, 1)[None])})
    for k, want in enumerate(expected):
        got = np.fromfile(ws.outputs_dir / "aipp" / f"1_{k}.bin", np.float32).reshape(want.shape)
        assert np.abs(got - want).max() <= 1e-3
    with pytest.raises(InputError, match="only an .om converted with --aipp takes"):
        infer.run(ws, infer.InferOptions(backend="onnxruntime"))


def test_compare_om_with_onnx(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws)
    proc = run_cli("-w", ws.root, "--json", "compare", ws.models_dir / "yolact_edge_bs1.om",
                   ws.default_onnx, "--num-inputs", "2", env=fake_env())
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["ok"] and result["detections"]["matched"] == result["detections"]["b"] == 200


def test_an_om_names_its_checkpoint_through_convert(ascend, onnx_workspace, tmp_path, checkpoint):
    """The chain through an .om: converted from checkpoint A's ONNX, then B exported and not
    converted; the .om's outputs are A's, so eval refuses B's heads for them."""
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    assert ws.step("convert")["outputs"]["models"][0]["weights_sha256"] == \
        ws.step("export")["inputs"]["weights_sha256"]
    export.run(ws, checkpoint(MBV2, seed=1), export.ExportOptions(dynamic_batch=True))
    infer.run(ws, infer.InferOptions(backend="ascend", run_name="npu", ais_bench="api"))
    with pytest.raises(InputError, match="npu was computed from .* but the host-side heads would come from"):
        evaluate.run(ws, evaluate.EvalOptions(workers=1))
    assert evaluate.run(ws, evaluate.EvalOptions(weights=checkpoint(MBV2), workers=1)).images == 2


# --- as the real tools behave (issue: the Ascend path on its first run on a real NPU host) ------

def test_cli_inputs_are_chunked_under_the_argument_limit():
    """Over 5,000 inputs: every comma-joined --input under 100 KiB (Linux refuses an argument
    over 128 KiB), every input exactly once and in order, only the last batch ever padded."""
    files = [Path("/data/workspaces/a-rather-long-folder-name/inputs/bin_file") / f"{i}.bin"
             for i in range(5003)]
    chunks = aisbench.input_chunks(files, per_batch=4)
    assert len(chunks) > 1
    assert [f for chunk in chunks for f in chunk] == files
    assert all(len(",".join(map(str, chunk)).encode()) <= 100 * 1024 for chunk in chunks)
    assert all(len(chunk) % 4 == 0 for chunk in chunks[:-1])
    argv = aisbench.cli_argv(Path("/m.om"), inputs=chunks[0], output=Path("/o"), dirname="d")
    assert max(len(a.encode()) for a in argv) <= 100 * 1024


def test_cli_mode_in_several_runs_gives_the_same_outputs(ascend, onnx_workspace, tmp_path, monkeypatch):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    monkeypatch.setattr(aisbench, "MAX_ARGUMENT_BYTES", 10)  # one input per run
    result = infer.run(ws, infer.InferOptions(backend="ascend", run_name="npu", ais_bench="cli"))
    assert result.computed == 2
    assert len(list(ws.logs_dir.glob("ais_bench_npu_device0_*.log"))) == 2
    _assert_same_outputs(ws.outputs_dir / "npu", ws.outputs_dir / "onnxruntime")


def test_output_folders_pass_ais_bench_rules_whatever_the_umask(ascend, onnx_workspace, tmp_path):
    """With umask 002 new folders are group-writable, which ais_bench refuses for --output; and
    ais_bench re-modes --output, which must not be the user's outputs/ folder."""
    import shutil
    import stat

    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    shutil.rmtree(ws.outputs_dir)
    old = os.umask(0o002)
    try:
        infer.run(ws, infer.InferOptions(backend="ascend", run_name="npu", ais_bench="cli"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(ws.outputs_dir.stat().st_mode) == 0o775  # untouched
    assert len(list((ws.outputs_dir / "npu").glob("*.bin"))) == 12


def test_a_run_name_ais_bench_refuses_is_a_usage_error_up_front(tmp_path):
    proc = run_cli("-w", tmp_path / "ws", "infer", "--backend", "ascend", "--run", "my run+1", env=fake_env())
    assert_clean_failure(proc, "--run 'my run+1'", "A-Z a-z 0-9 _ . -", code=2)


def test_bench_in_cli_mode_leaves_no_outputs_behind(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    rows = bench.run(ws, bench.BenchOptions(backend="ascend", batch_sizes=(1,), loop=2, warmup=0, ais_bench="cli")).rows
    assert rows[0].latency_p90_ms is not None  # the per-run times were read from the summary
    assert not list(ws.root.rglob("pure_infer_data_*")) and not list(ws.root.rglob("*_summary.json"))[1:]


def test_the_emulator_refuses_output_paths_as_the_tool_does(ascend, onnx_workspace, tmp_path):
    import subprocess

    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    om = next(ws.models_dir.glob("*.om"))
    output = tmp_path / "out"
    output.mkdir(mode=0o775)
    os.chmod(output, 0o775)
    argv = aisbench.cli_argv(om, output=output, dirname="x", loop=1)
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **fake_env()})
    assert proc.returncode == 1 and "writable by group or others" in proc.stdout
    os.chmod(output, 0o755)
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **fake_env()})
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert output.stat().st_mode & 0o777 == 0o750  # re-moded, as the tool does


def test_ais_bench_without_cann_environment_says_to_source_set_env(onnx_workspace, tmp_path):
    """aclruntime needs CANN's libraries (set_env.sh): without them `--ais-bench auto` must not
    end in an internal ImportError; doctor says the same."""
    ws = _clone(onnx_workspace, tmp_path)
    env = fake_env(LD_LIBRARY_PATH="")
    proc = run_cli("-w", ws.root, "convert", env=env)
    assert proc.returncode == 0, proc.stderr
    for mode in ("auto", "api"):
        proc = run_cli("-w", ws.root, "infer", "--backend", "ascend", "--ais-bench", mode, env=env)
        assert_clean_failure(proc, "ais_bench's Python API cannot load: libascendcl.so", "set_env.sh", code=4)
    checks = {c["name"]: c for c in json.loads(run_cli("-w", ws.root, "--json", "doctor", env=env).stdout)["checks"]}
    assert "libascendcl.so" in checks["ais_bench"]["detail"] and "set_env.sh" in checks["ais_bench"]["fix"]


def test_json_stays_json_with_the_noisy_api(onnx_workspace, tmp_path):
    """aclruntime prints [INFO] lines on the C-level stdout; they go to logs/ais_bench_api.log."""
    ws = _clone(onnx_workspace, tmp_path)
    assert run_cli("-w", ws.root, "convert", env=fake_env()).returncode == 0
    proc = run_cli("-w", ws.root, "--json", "infer", "--backend", "ascend", "--ais-bench", "api",
                   "--run", "npu", env=fake_env())
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["computed"] == 2 and "[INFO]" not in proc.stdout
    assert "[INFO] load model" in (ws.logs_dir / "ais_bench_api.log").read_text()


def _trace(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _standalone_om(ws: Workspace, tmp_path: Path) -> Path:
    """The workspace's batch-1 .om copied where no convert record knows it (given with --model)."""
    import shutil

    folder = tmp_path / "elsewhere"
    folder.mkdir(mode=0o755)
    os.chmod(folder, 0o755)
    return Path(shutil.copy(ws.models_dir / "yolact_edge_bs1.om", folder / "static.om"))


def test_a_static_om_given_with_model_gets_no_dym_batch(ascend, onnx_workspace, tmp_path):
    """ais_bench refuses --dymBatch on a static .om: whether to pass it is read from the .om
    itself (ais_bench's description of it), not from the manifest, which does not know this file."""
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    om = _standalone_om(ws, tmp_path)
    result = infer.run(ws, infer.InferOptions(backend="ascend", model=om, run_name="npu", ais_bench="cli"))
    assert result.batch_size == 1 and result.computed == 2
    _assert_same_outputs(ws.outputs_dir / "npu", ws.outputs_dir / "onnxruntime")
    assert not any("--dymBatch" in log.read_text() for log in ws.logs_dir.glob("ais_bench_npu_*.log"))
    rows = bench.run(ws, bench.BenchOptions(backend="ascend", model=om, batch_sizes=(1,), loop=2, warmup=0, ais_bench="cli")).rows
    assert rows[0].batch_size == 1
    with pytest.raises(UsageError, match="static.om has a static batch of 1, not 4"):
        bench.run(ws, bench.BenchOptions(backend="ascend", model=om, batch_sizes=(4,), loop=2, warmup=0, ais_bench="cli"))


def test_the_emulator_refuses_dym_batch_on_a_static_om(ascend, onnx_workspace, tmp_path):
    import subprocess

    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    argv = aisbench.cli_argv(ws.models_dir / "yolact_edge_bs1.om", loop=1, dym_batch=1)
    proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **fake_env()})
    assert proc.returncode == 1 and "not a dynamic batch model" in proc.stdout


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_an_om_taking_fp16_refuses_float32_inputs_of_the_same_size(ascend, onnx_workspace, tmp_path, mode):
    """ais_bench compares byte sizes only: a batch-2 .om with an fp16 input takes one float32
    file as its whole batch. The .om's own input dtype is checked, whatever the manifest says."""
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(2,), atc_args=("--input_fp16_nodes=image",)))
    om = ws.models_dir / "yolact_edge_bs2.om"
    assert (ws.inputs_dir / "bin_file" / "0.bin").stat().st_size == 2 * 3 * 550 * 550 * 2
    with pytest.raises(InputError, match="this .om takes float16 nchw inputs but they were prepared as float32"):
        infer.run(ws, infer.InferOptions(backend="ascend", model=om, run_name="fp16", ais_bench=mode))
    assert not list((ws.outputs_dir / "fp16").glob("*.bin"))


def test_the_emulator_compares_byte_sizes_without_converting(ascend, onnx_workspace, tmp_path):
    from ais_bench.infer.interface import InferSession

    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,), atc_args=("--input_fp16_nodes=image",)))
    session = InferSession(0, str(ws.models_dir / "yolact_edge_bs1.om"))
    with pytest.raises(RuntimeError, match="size 3630000 does not match the model's 1815000"):
        session.infer([np.zeros((1, 3, 550, 550), np.float32)])
    assert len(session.infer([np.zeros((1, 3, 550, 550), np.float16)])) == 6


@pytest.mark.parametrize("mode", ["api", "cli"])
def test_npu_compute_time_is_the_execute_alone_and_copies_are_apart(ascend, onnx_workspace, tmp_path, mode):
    """NPU_compute_time is what the device timed as execute (summary() in the API, the summary
    JSON of the CLI), the same way in both modes; H2D and D2H are reported beside it."""
    ascend.setenv("FAKE_ACL_TRACE", str(tmp_path / "trace.jsonl"))
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    infer.run(ws, infer.InferOptions(backend="ascend", run_name="npu", ais_bench=mode))
    # the CLI's warm-up run is traced too but not counted, as ais_bench does
    executes = _trace(tmp_path / "trace.jsonl")[-2:]
    summary = json.loads((ws.outputs_dir / "npu_summary.json").read_text())
    assert summary["npu_compute_time_list"] == [t["execute_ms"] for t in executes]
    for key, traced in (("H2D_latency", "h2d_ms"), ("D2H_latency", "d2h_ms")):
        assert summary[key]["count"] == 2
        assert summary[key]["mean"] == pytest.approx(np.mean([t[traced] for t in executes]))
    (tmp_path / "trace.jsonl").unlink()
    row = bench.run(ws, bench.BenchOptions(backend="ascend", batch_sizes=(1,), loop=3, warmup=0, ais_bench=mode)).rows[0]
    executes = _trace(tmp_path / "trace.jsonl")[-3:]
    assert row.latency_mean_ms == round(float(np.mean([t["execute_ms"] for t in executes])), 2)
    assert row.h2d_mean_ms == round(float(np.mean([t["h2d_ms"] for t in executes])), 3)
    assert row.d2h_mean_ms is not None


def test_copies_stats_merge_over_runs():
    from yolact_edge_cli.data import binio

    merged = binio.merge_stats([binio.timing_stats([1.0, 3.0]), binio.timing_stats([]), binio.timing_stats([8.0])])
    assert (merged["count"], merged["min"], merged["max"], merged["mean"]) == (3, 1.0, 8.0, 4.0)
    assert merged["median"] is None  # not recoverable from parts, so not guessed
    assert binio.merge_stats([binio.timing_stats([2.0, 4.0])])["median"] == 3.0


def test_api_mode_runs_one_process_per_npu(ascend, onnx_workspace, tmp_path):
    """aclruntime holds the GIL (the emulator too): NPUs driven from threads of one process run
    one after another, so each NPU gets a process of its own."""
    ascend.setenv("FAKE_NPU_DEVICES", "0,1")
    ascend.setenv("FAKE_ACL_TRACE", str(tmp_path / "trace.jsonl"))
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    result = infer.run(ws, infer.InferOptions(backend="ascend", device="0,1", run_name="multi", ais_bench="api"))
    assert result.computed == 2
    pids = {t["device"]: t["pid"] for t in _trace(tmp_path / "trace.jsonl")}
    assert set(pids) == {0, 1} and pids[0] != pids[1] and os.getpid() not in pids.values()
    _assert_same_outputs(ws.outputs_dir / "multi", ws.outputs_dir / "onnxruntime")


def test_a_device_failing_in_its_process_is_one_clear_error(ascend, onnx_workspace, tmp_path):
    ascend.setenv("FAKE_NPU_DEVICES", "0")
    ws = _clone(onnx_workspace, tmp_path)
    convert.run(ws, convert.ConvertOptions(batch_sizes=(1,)))
    with pytest.raises(EnvironmentProblem, match="ais_bench failed on npu:1: .*acl open device 1 failed"):
        infer.run(ws, infer.InferOptions(backend="ascend", device="1,0", run_name="multi", ais_bench="api"))


def _toolkit(tmp_path: Path, version: str) -> Path:
    home = tmp_path / f"cann-{version}"
    home.mkdir()
    (home / "version.cfg").write_text(f"runtime_running_version=[{version}.0.1:{version}]\n")
    return home


@pytest.mark.parametrize("version, mode, soc, refused", [
    ("6.3.RC2", "cube_fp16in_fp32out", "Ascend310P3", "needs CANN 7.0 or later; this toolkit is CANN 6.3.RC2"),
    ("6.3.RC2", "allow_mix_precision_fp16", "Ascend310P3", "needs CANN 7.0 or later"),
    ("8.0.RC2", "allow_mix_precision_bf16", "Ascend310P3", "needs a chip with bf16"),
    ("8.0.RC2", "allow_fp32_to_bf16", "Ascend310P3", "needs a chip with bf16"),
])
def test_precision_modes_the_installed_cann_lacks_are_refused_before_atc(
        ascend, onnx_workspace, tmp_path, version, mode, soc, refused):
    """atc refuses them with E10001 (the emulator too); yedge says why, and which release
    or chip the mode needs, before running it."""
    ws = _clone(onnx_workspace, tmp_path)
    env = fake_env(ASCEND_TOOLKIT_HOME=str(_toolkit(tmp_path, version)), ASCEND_OPP_PATH="/opp")
    proc = run_cli("-w", ws.root, "convert", "--soc-version", soc, "--precision-mode", mode, env=env)
    assert_clean_failure(proc, refused, code=2)
    assert not (ws.logs_dir / "atc_bs1.log").exists()  # atc never ran


def test_precision_modes_the_installed_cann_has_run(ascend, onnx_workspace, tmp_path):
    ws = _clone(onnx_workspace, tmp_path)
    env = fake_env(ASCEND_TOOLKIT_HOME=str(_toolkit(tmp_path, "8.0.RC2")), ASCEND_OPP_PATH="/opp")
    for mode, soc in (("cube_fp16in_fp32out", "Ascend310P3"), ("allow_mix_precision_bf16", "Ascend910B3")):
        proc = run_cli("-w", ws.root, "convert", "--soc-version", soc, "--precision-mode", mode, env=env)
        assert proc.returncode == 0, proc.stderr
    proc = run_cli("-w", ws.root, "convert", "--soc-version", "Ascend310P3", "--precision-mode", "force_fp32",
                   "--atc-arg=--precision_mode_v2=origin", env=env)
    assert_clean_failure(proc, "cannot be used together", code=2)


def test_the_emulated_atc_refuses_what_its_release_lacks(onnx_workspace, tmp_path):
    import subprocess

    job = AtcJob(onnx_workspace.default_onnx.absolute(), tmp_path / "m", "Ascend310P3",
                 batch_size=1, precision_mode="cube_fp16in_fp32out")
    env = {**os.environ, **fake_env(ASCEND_TOOLKIT_HOME=str(_toolkit(tmp_path, "6.3.RC2")))}
    proc = subprocess.run(job.argv(), capture_output=True, text=True, env=env, cwd=tmp_path)
    assert proc.returncode == 255 and "E10001" in proc.stdout


@pytest.mark.exactness
def test_streaming_eval_on_the_npu_gives_the_files_of_infer_and_eval(onnx_workspace, tmp_path):
    """`yedge eval --images` with the ascend backend: InferSession in the stream, aclruntime's
    lines in the log (--json stays JSON), the same result files as infer → eval."""
    ws = _clone(onnx_workspace, tmp_path)
    env = fake_env()
    assert run_cli("-w", ws.root, "convert", env=env).returncode == 0
    assert run_cli("-w", ws.root, "infer", "--backend", "ascend", "--run", "npu", env=env).returncode == 0
    assert run_cli("-w", ws.root, "eval", "--workers", "1", env=env).returncode == 0
    proc = run_cli("-w", ws.root, "--json", "eval", "--stream", "--backend", "ascend", env=env)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["streamed"] is True
    for name in ("bbox_detections.json", "mask_detections.json"):
        assert (ws.results_dir / "npu" / name).read_bytes() == (ws.results_dir / "stream" / name).read_bytes()
    metrics = json.loads((ws.results_dir / "stream" / "metrics.json").read_text())
    assert metrics["provenance"]["device"] == "npu:0"  # the session's, not the --device default
    # compare runs an .om in the precision it was converted in, and refuses another one
    om, onnx_model = ws.models_dir / "yolact_edge_bs1.om", ws.models_dir / "yolact_edge.onnx"
    proc = run_cli("-w", ws.root, "--json", "compare", om, onnx_model, "--num-inputs", "1", env=env)
    assert proc.returncode in (0, 5), proc.stderr
    assert json.loads(proc.stdout)["a_precision"] == "fp16" and json.loads(proc.stdout)["b_precision"] == "fp32"
    assert_clean_failure(run_cli("-w", ws.root, "compare", om, onnx_model, "--a-precision", "int8", env=env),
                         "--a-precision int8: yolact_edge_bs1.om was converted in fp16", code=2)
    # --device 0,1: one replica per NPU, each in a process of its own, the same predictions
    trace = tmp_path / "trace.jsonl"
    two = fake_env(FAKE_NPU_DEVICES="0,1", FAKE_ACL_TRACE=str(trace))
    images = [DATA / "coffee.png", DATA / "astronaut.png"]
    for device in ("0", "0,1"):
        proc = run_cli("-w", ws.root, "--json", "predict", *images, "--backend", "ascend", "--device", device,
                       "--no-save-images", "-o", tmp_path / device, env=two)
        assert proc.returncode == 0, proc.stderr
    executes = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(executes) == 4 and {e["device"] for e in executes[:2]} == {0}
    assert {e["device"] for e in executes[2:]} == {0, 1} and len({e["pid"] for e in executes[2:]}) == 2
    assert (tmp_path / "0,1" / "predictions.jsonl").read_bytes() == (tmp_path / "0" / "predictions.jsonl").read_bytes()
