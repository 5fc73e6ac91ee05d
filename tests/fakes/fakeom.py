"""The test-only `.om` container the fake atc writes and the fake ais_bench reads: a magic, a
JSON header (what atc was asked for) and the ONNX bytes. Never shipped."""
import json
import struct

MAGIC = b"FAKEOM01"


def write(path, meta: dict, onnx_bytes: bytes) -> None:
    header = json.dumps(meta).encode()
    with open(path, "wb") as handle:
        handle.write(MAGIC + struct.pack("<I", len(header)) + header + onnx_bytes)


def read(path) -> tuple[dict, bytes]:
    data = open(path, "rb").read()
    if not data.startswith(MAGIC):
        raise ValueError(f"{path} is not an offline model")
    (size,) = struct.unpack("<I", data[8:12])
    return json.loads(data[12:12 + size]), data[12 + size:]
