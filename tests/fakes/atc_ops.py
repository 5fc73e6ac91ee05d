"""The ONNX operators atc converts, read from docs/atc-onnx-operators.md (the one place the list
is written), for the atc emulator and the export tests. Never shipped."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "atc-onnx-operators.md"


def _block(name: str) -> str:
    block = re.search(rf"<!-- begin {name} -->\s*```(.*?)```\s*<!-- end {name} -->", DOC.read_text(), re.S)
    if block is None:
        raise ValueError(f"{DOC} has no {name} block")
    return block.group(1)


def supported(release: tuple[int, int] = (5, 0)) -> set[str]:
    """The operators a CANN release's atc parses: the 5.0.4 list, and the later ones from theirs."""
    return set(_block("operators").split()) | {
        op for op, since in later_operators().items() if release >= since}


def later_operators() -> dict[str, tuple[int, ...]]:
    return {op: tuple(int(v) for v in since.split(".")) for op, since in
            (line.split() for line in _block("later operators").strip().splitlines())}


def unsupported(model, release: tuple[int, int] = (5, 0)) -> list[str]:
    """The op types of an onnx ModelProto that atc of a CANN release has no parser for, sorted
    (AMCT's own ops, in the deploy model it writes, atc parses)."""
    return sorted({node.op_type for node in model.graph.node} - supported(release) - amct_ops())


def amct_ops() -> set[str]:
    try:  # as tests.fakes.atc_ops (the tests), or as atc_ops (the atc emulator)
        from .amct_ops import AMCT_OPS
    except ImportError:
        from amct_ops import AMCT_OPS
    return AMCT_OPS
