"""The shape of the package: steps compose the library and never each other; the modules a
torch-free command needs import no torch; every command speaks JSON the same both ways."""
import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import DATA, ROOT, copy_sample_images, run_cli

PACKAGE = ROOT / "yolact_edge_cli"
STEPS = sorted({p.stem for p in (PACKAGE / "steps").glob("*.py") if p.stem != "__init__"}
               | {p.parent.name for p in (PACKAGE / "steps").glob("*/__init__.py")})  # a step's package too


def _imported_modules(path: Path, typing_too: bool = True) -> set[str]:
    """Absolute names of the package modules a file imports (relative imports resolved), those
    inside functions included; `typing_too`: also those only type checkers read."""
    package = ["yolact_edge_cli", *path.relative_to(PACKAGE).parent.parts]
    found = set()
    tree = ast.parse(path.read_text())
    if not typing_too:
        for node in ast.walk(tree):
            if isinstance(node, ast.If) and ast.unparse(node.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
                node.body = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            module = ".".join([*base, *(node.module.split(".") if node.module else [])])
            found.add(module)
            found.update(f"{module}.{alias.name}" for alias in node.names)
        elif isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
    return found


@pytest.mark.parametrize("step", STEPS)
def test_no_step_imports_another_step(step):
    others = tuple(f"yolact_edge_cli.steps.{s}" for s in STEPS if s != step)
    folder = PACKAGE / "steps" / step
    for path in sorted(folder.glob("*.py")) if folder.is_dir() else [PACKAGE / "steps" / f"{step}.py"]:
        assert not [m for m in _imported_modules(path) if m in others or m.startswith(tuple(o + "." for o in others))]


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def test_the_package_has_no_import_cycle():
    """Every import of every module, those inside functions included (not those for type
    checkers alone): no module reaches itself."""
    modules = {_module_name(path): path for path in PACKAGE.rglob("*.py")}
    edges = {name: sorted((_imported_modules(path, typing_too=False) & modules.keys()) - {name})
             for name, path in modules.items()}
    assert "yolact_edge_cli.stream.local" in edges["yolact_edge_cli.stream.engine"]  # lazy ones are read
    state: dict[str, int] = {}  # 1: on the path being walked, 2: done

    def walk(name: str, path: list[str]) -> None:
        state[name] = 1
        for target in edges[name]:
            assert state.get(target) != 1, "import cycle: " + " → ".join([*path[path.index(target):], target])
            if target not in state:
                walk(target, [*path, target])
        state[name] = 2

    for name in sorted(modules):
        if name not in state:
            walk(name, [name])


def test_every_import_inside_the_package_names_one_of_its_modules():
    """`from .x import y` inside a function runs only when it is called: a wrong one would be an
    internal error at run time, so every one is read here."""
    modules = {_module_name(path) for path in PACKAGE.rglob("*.py")}
    for path in PACKAGE.rglob("*.py"):
        package = ["yolact_edge_cli", *path.relative_to(PACKAGE).parent.parts]
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.ImportFrom) and (node.level or (node.module or "").startswith("yolact_edge_cli")):
                base = package[: len(package) - node.level + 1] if node.level else []
                module = ".".join([*base, *(node.module.split(".") if node.module else [])])
                where = f"{path.relative_to(ROOT)}:{node.lineno}"
                assert module in modules, f"{where} imports {module}, which is not a module"


@pytest.mark.parametrize("module", [
    "yolact_edge_cli.cli", "yolact_edge_cli.steps.prep", "yolact_edge_cli.steps.convert",
    "yolact_edge_cli.steps.infer", "yolact_edge_cli.steps.evaluate", "yolact_edge_cli.data.binio",
    "yolact_edge_cli.backends.onnxruntime", "yolact_edge_cli.backends.ascend",
    "yolact_edge_cli.resolve", "yolact_edge_cli.host",
    "yolact_edge_cli.stream.engine", "yolact_edge_cli.stream.local",
])
def test_torch_free_modules(module):
    code = f"import sys, {module}; sys.exit(1 if 'torch' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0, f"{module} imports torch"


def test_ray_is_imported_only_for_engine_ray():
    """Ray is optional and slow to import: the modules of the commands that offer --engine ray
    (and the engine's own module) import it only when a Ray run starts."""
    modules = ("yolact_edge_cli.cli", "yolact_edge_cli.steps.predict", "yolact_edge_cli.steps.evaluate",
               "yolact_edge_cli.steps.bench", "yolact_edge_cli.steps.doctor",
               "yolact_edge_cli.stream.ray_engine", "yolact_edge_cli.stream.ray_cluster")
    code = f"import sys, {', '.join(modules)}; sys.exit(1 if 'ray' in sys.modules else 0)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


@pytest.mark.slow
@pytest.mark.parametrize("layout", ["head", "detect"])
def test_the_head_and_detect_layouts_run_without_torch(tmp_path, exported, layout):
    """The whole commands, worker processes included: prep, infer on onnxruntime, eval (from the
    run folder, on two workers, and streaming) and predict never import torch where the model's
    graph holds the heads (only the fpn layout's heads run in PyTorch on the host). A `torch`
    that refuses to be imported comes first on every process's path."""
    ws = exported(tmp_path / "ws", "yolact_edge_mobilenetv2_config", layout=layout)
    poisoned = tmp_path / "no_torch" / "torch"
    poisoned.mkdir(parents=True)
    (poisoned / "__init__.py").write_text("raise ImportError('torch imported by a torch-free command')\n")
    env = {"PYTHONPATH": str(poisoned.parent)}
    images = copy_sample_images(tmp_path / "images")
    annotations = DATA / "golden" / "eval_mini" / "instances_mini.json"
    for argv in (["prep", "--images", images, "--annotations", annotations, "--workers", "1"],
                 ["infer", "--backend", "onnxruntime"],
                 ["eval", "--workers", "2"],
                 ["eval", "--images", images, "--annotations", annotations, "--workers", "2"],
                 ["predict", images, "--workers", "2"]):
        proc = run_cli("-w", ws.root, *argv, env=env)
        assert proc.returncode == 0, (argv, proc.stderr[-2000:])
    assert len((ws.root / "predict" / "images" / "predictions.jsonl").read_text().splitlines()) == 2


@pytest.mark.parametrize("argv", [
    ["doctor"],
    ["random-weights", "-o", "{tmp}/r.pth", "--config", "yolact_edge_mobilenetv2_config"],
    ["eval", "--against", "{tmp}/missing.json"],
    ["infer", "--backend", "torch", "--half", "--model", "{tmp}/m.pth"],
])
def test_json_before_or_after_the_command_is_the_same(tmp_path, argv):
    argv = [a.replace("{tmp}", str(tmp_path)) for a in argv]
    ws = ["-w", str(tmp_path / "ws")]
    before = run_cli(*ws, "--json", *argv)
    after = run_cli(*ws, *argv, "--json")
    assert before.returncode == after.returncode
    first, second = json.loads(before.stdout), json.loads(after.stdout)
    for data in (first, second):  # paths and hashes are the same, timings may differ
        if isinstance(data, dict):
            data.pop("seconds", None)
    assert first == second
