"""Worker processes forked from a process that held an onnxruntime session: the inherited copy
must never be destroyed in the worker (its destructor waits for the parent's pool threads and
hangs for good). yolact_edge_cli.parallel freezes what a forked child inherits."""
import subprocess
import sys
import textwrap

import onnx
from onnx import TensorProto, helper

SCENARIO = textwrap.dedent("""
    import gc, sys, time
    from concurrent.futures import ProcessPoolExecutor
    import numpy as np
    import onnxruntime as ort
    import yolact_edge_cli.parallel  # noqa: F401  (what every pool of the package imports)

    gc.disable()  # the dropped session stays uncollected garbage here, as between two commands
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(sys.argv[1], options, providers=["CPUExecutionProvider"])
    session.run(None, {"x": np.ones((64, 64), np.float32)})

    class Holder:
        pass

    holder = Holder()
    holder.itself, holder.session = holder, session  # a cycle: only a collection frees it
    del session, holder
    time.sleep(2)  # the session's pool thread now waits on its condition variable


    def collect():
        gc.collect()  # in the worker: what a first torch.load's allocations trigger
        return "ok"


    with ProcessPoolExecutor(1) as pool:
        print(pool.submit(collect).result())
""")


def test_a_worker_never_destroys_an_inherited_onnxruntime_session(tmp_path):
    model = tmp_path / "matmul.onnx"
    graph = helper.make_graph([helper.make_node("MatMul", ["x", "x"], ["y"])], "g",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [64, 64])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [64, 64])])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)]), model)
    proc = subprocess.run([sys.executable, "-c", SCENARIO, str(model)], capture_output=True, text=True,
                          timeout=120)
    assert proc.returncode == 0 and proc.stdout.strip() == "ok", proc.stderr
