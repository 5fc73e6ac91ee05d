"""The command line as a user meets it: help, version, and bad inputs to `export`."""
import os
import pickle
import subprocess
import sys

import pytest
import torch

from yolact_edge_cli import __version__

from .conftest import assert_clean_failure, run_cli


def test_help_lists_the_steps():
    for argv in ([sys.executable, "-m", "yolact_edge_cli", "--help"], ["yedge", "--help"]):
        if argv[0] == "yedge":
            argv[0] = os.path.join(os.path.dirname(sys.executable), "yedge")
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, "COLUMNS": "200"})
        assert proc.returncode == 0, proc.stderr
        for step in ("export", "random-weights"):
            assert step in proc.stdout


def _help_at_80_columns(command: str | None) -> str:
    from typer.testing import CliRunner

    from yolact_edge_cli.cli import app

    result = CliRunner().invoke(app, [*([command] if command else []), "--help"],
                                env={"COLUMNS": "80", "TERMINAL_WIDTH": "80"})
    assert result.exit_code == 0, result.output
    return result.output


def test_help_shows_every_option_whole_at_80_columns():
    """A user's terminal of 80 columns: every option's name appears whole, nothing is cut with
    an ellipsis, and no line is wider than the terminal."""
    import re

    import typer.main

    from yolact_edge_cli.cli import app

    group = typer.main.get_command(app)
    assert {"predict", "eval", "bench", "report"} <= set(group.commands)
    for name, command in [(None, group), *sorted(group.commands.items())]:
        text = _help_at_80_columns(name)
        assert max(len(line) for line in text.splitlines()) <= 80, name
        assert "…" not in text, (name, [line for line in text.splitlines() if "…" in line])
        for param in command.params:
            for option in (o for o in param.opts + param.secondary_opts if o.startswith("-")):
                assert re.search(re.escape(option) + r"(?![\w-])", text), (name, option)


def test_version():
    proc = run_cli("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"yedge {__version__}"


class Evil:
    def __reduce__(self):
        return (os.system, ("touch pwned",))


def _bad_weights(kind: str, tmp_path, good) -> str:
    path = tmp_path / f"{kind}.pth"
    if kind == "missing":
        return str(path)
    if kind == "directory":
        path.mkdir()
    elif kind == "empty":
        path.write_bytes(b"")
    elif kind == "truncated":
        path.write_bytes(good.read_bytes()[:5_000_000])
    elif kind == "random":
        path.write_bytes(os.urandom(20_000))
    elif kind == "code":
        torch.save({"weights": Evil()}, path)
    elif kind == "raw-pickle":
        path.write_bytes(pickle.dumps(Evil(), protocol=2))
    return str(path)


@pytest.mark.parametrize("kind, fragment", [
    ("missing", "weights file not found"),
    ("directory", "is a directory"),
    ("empty", "empty"),
    ("truncated", "truncated or corrupt"),
    ("random", "not a readable PyTorch checkpoint"),
    ("code", "Python objects or code"),
    ("raw-pickle", "Python objects or code"),
])
def test_export_rejects_bad_weights_cleanly(kind, fragment, tmp_path, checkpoint):
    weights = _bad_weights(kind, tmp_path, checkpoint())
    out = tmp_path / "ws" / "models" / "x.onnx"
    proc = run_cli("-w", tmp_path / "ws", "export", "--weights", weights, "-o", out, cwd=tmp_path)
    line = assert_clean_failure(proc, weights, fragment, code=3)
    assert " — " in line  # says what to do
    assert not out.exists()
    assert not (tmp_path / "pwned").exists()
    models = tmp_path / "ws" / "models"
    assert not models.exists() or not any(models.iterdir())  # no temporary leftovers


def test_an_error_naming_a_path_with_brackets_keeps_them(tmp_path):
    """Rich would read "[draft]" as a style tag and drop it from the one error line."""
    weights = tmp_path / "[draft]" / "[bold]model.pth"
    proc = run_cli("-w", tmp_path / "ws", "export", "--weights", weights)
    assert_clean_failure(proc, str(weights), "weights file not found", code=3)


def test_export_with_the_wrong_config_names_the_matching_one(tmp_path, checkpoint):
    out = tmp_path / "x.onnx"
    proc = run_cli("-w", tmp_path, "export", "--weights", checkpoint(),
                   "--config", "yolact_edge_mobilenetv2_config", "-o", out)
    line = assert_clean_failure(proc, "does not fit yolact_edge_mobilenetv2_config",
                                "--config yolact_edge_resnet50_config", code=3)
    assert "missing backbone." in line
    assert not out.exists()


def test_export_to_an_unwritable_path(tmp_path, checkpoint):
    blocker = tmp_path / "not_a_folder"
    blocker.write_text("x")
    proc = run_cli("-w", tmp_path, "export", "--weights", checkpoint(), "-o", blocker / "x.onnx")
    assert_clean_failure(proc, str(blocker / "x.onnx"), "not a folder", code=4)
    assert blocker.read_text() == "x"


def test_unknown_layout_is_a_usage_error(tmp_path, checkpoint):
    proc = run_cli("-w", tmp_path, "export", "--weights", checkpoint(), "--layout", "nchw")
    assert_clean_failure(proc, "'nchw' is not one of 'fpn', 'head'", "yedge export --help", code=2)


def test_json_output_of_export(tmp_path, checkpoint):
    import json

    proc = run_cli("-w", tmp_path / "ws", "--json", "export", "--weights",
                   checkpoint("yolact_edge_mobilenetv2_config"))
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)
    assert result["config"] == "yolact_edge_mobilenetv2_config"
    assert result["onnx"].endswith("models/yolact_edge.onnx")
    assert "Conv" in result["op_types"]


@pytest.mark.slow
def test_paths_with_brackets_print_as_they_are(tmp_path, prepared):
    """Tables and summary lines print paths exactly: Rich would take "[x]" for a style tag."""
    ws = prepared(tmp_path / "ws [x]")
    proc = run_cli("-w", ws.root, "infer", "--run", "again", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "ws [x]/outputs/again" in proc.stdout.replace("\n", "")
    proc = run_cli("-w", ws.root, "eval", "--workers", "1", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert "results in " + str(ws.root / "results" / "again") in proc.stdout.replace("\n", "")


def test_a_static_batch_with_dynamic_batch_is_refused(tmp_path, checkpoint):
    proc = run_cli("-w", tmp_path, "export", "--weights", checkpoint(), "--batch-size", "2", "--dynamic-batch")
    assert_clean_failure(proc, "--batch-size 2 and --dynamic-batch", code=2)
    assert not (tmp_path / "models").exists() or not any((tmp_path / "models").iterdir())
