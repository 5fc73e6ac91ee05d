"""Test-only emulator of Ascend's ais_bench (never shipped): `python -m ais_bench` and
`ais_bench.infer.interface.InferSession`, running the fake `.om` with onnxruntime and
reproducing the real tool's batching, padding, file names and summaries
(docs/ascend.md §1)."""
