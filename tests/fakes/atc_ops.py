"""The ONNX operators atc converts, read from docs/atc-onnx-operators.md (the one place the list
is written), for the atc emulator and the export tests. Never shipped."""
import re
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "atc-onnx-operators.md"


def supported() -> set[str]:
    block = re.search(r"<!-- begin operators -->\s*```(.*?)```\s*<!-- end operators -->", DOC.read_text(), re.S)
    if block is None:
        raise ValueError(f"{DOC} has no operator block")
    return set(block.group(1).split())


def unsupported(model) -> list[str]:
    """The op types of an onnx ModelProto that atc has no parser for, sorted (AMCT's own ops,
    in the deploy model it writes, atc parses)."""
    return sorted({node.op_type for node in model.graph.node} - supported() - amct_ops())


def amct_ops() -> set[str]:
    try:  # as tests.fakes.atc_ops (the tests), or as atc_ops (the atc emulator)
        from .amct_ops import AMCT_OPS
    except ImportError:
        from amct_ops import AMCT_OPS
    return AMCT_OPS
