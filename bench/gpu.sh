#!/usr/bin/env bash
# The device part on a GPU, in one run of under 8 minutes on an H100/H200: images/s of the
# ResNet-50 network (the fpn layout: backbone, FPN, prototypes) at batch 1, 8 and 64 for
#   torch fp32, torch fp16 (channels-last), torch fp16 + --compile (torch.compile, static shapes
#   replayed as CUDA graphs), and onnxruntime (TensorRT, then CUDA providers, where that
#   onnxruntime has them; a CPU-only onnxruntime is reported as such).
# Run from the repository root, with a python3 whose torch is a CUDA build:
#   bench/gpu.sh [OUT_DIR]            (DEVICE=cpu runs the same steps on the CPU, to try the script)
set -uo pipefail
out=${1:-${OUT:-/tmp/yedge-gpu}}
device=${DEVICE:-cuda}
mkdir -p "$out"
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" PYTHONUNBUFFERED=1
ws="$out/ws"
yedge() { python3 -m yolact_edge_cli -w "$ws" "$@"; }

python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.cuda.is_available(),
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else "")'
yedge random-weights -o "$out/r50.pth" > /dev/null || exit 1
yedge export --weights "$out/r50.pth" --dynamic-batch > "$out/export.log" 2>&1 || { cat "$out/export.log"; exit 1; }

sweep=(--device "$device" --batch-sizes 1,8,64 --loop 50 --warmup 10 --max-seconds 45)
run() {  # name, seconds, bench arguments…
  local name=$1 limit=$2
  shift 2
  # SIGINT first: bench then prints the batch sizes that finished (exit 130)
  if ! timeout -s INT -k 15 "$limit" python3 -m yolact_edge_cli -w "$ws" --json bench "$@" > "$out/$name.json" 2> "$out/$name.err"; then
    echo "$name: did not finish: $(tail -n 1 "$out/$name.err")"
  fi
}
run torch-fp32 90 --backend torch --model "$out/r50.pth" "${sweep[@]}"
run torch-fp16 90 --backend torch --model "$out/r50.pth" --half "${sweep[@]}"
run torch-fp16-compile 240 --backend torch --model "$out/r50.pth" --half --compile "${sweep[@]}"
run onnxruntime 120 --backend onnxruntime "${sweep[@]}"

python3 - "$out" <<'EOF'
import json, sys
from pathlib import Path
out = Path(sys.argv[1])
print(f"{'variant':20} {'batch':>5} {'img/s':>10} {'p50 ms':>9}")
for name in ("torch-fp32", "torch-fp16", "torch-fp16-compile", "onnxruntime"):
    path = out / f"{name}.json"
    try:  # an interrupted bench prints its result, then the interruption's own JSON
        result, _ = json.JSONDecoder().raw_decode(path.read_text())
    except (OSError, ValueError):
        print(f"{name:20} —  (see {name}.err)")
        continue
    if "error" in result:
        print(f"{name:20} —  {result['error']}")
        continue
    for row in result["rows"]:
        print(f"{name:20} {row['batch_size']:>5} {row['throughput']:>10.1f} {row['latency_p50_ms']:>9.2f}")
EOF
