#!/usr/bin/env bash
# qforge against ONNX Runtime 1.30 on this machine, ResNet18 and MobileNetV2, fp32 and int8 (QDQ),
# at 3x224x224 batch 1 and 1x28x28 batch 64: rounds of the eight figures, each ONNX Runtime's run of
# one model right beside qforge's of the same (which runs first alternates from round to round), so
# that the machine's slow and fast phases fall on both sides of each ratio. One line per figure.
# Needs what ../shared/reference/ort_reference.sh needs (nodejs npm, python3-torch, python3-onnx);
# qforge itself never does. The reference installs onnxruntime-node and exports the models on its
# first run; ONNX Runtime's runs are scripts/ort_one.js, timed as the reference's.
#   scripts/bench_vs_ort.sh [rounds] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} t=${2:-2}
q=build/apps/qforge
ref=${ORT_REFERENCE:-../shared/reference/ort_reference.sh}
cache=${ORT_REFERENCE_CACHE:-${TMPDIR:-/tmp}/qforge-ort-reference}
if [ ! -d "$cache/node_modules/onnxruntime-node" ] || [ ! -f "$cache/models/mobilenet_v2_28_qdq.onnx" ]; then
  bash "$ref" "$t" > /dev/null  # installs the runtime, exports the models
fi
ort() { NODE_PATH="$cache/node_modules" node scripts/ort_one.js "$cache/models" "$t" "$@"; }
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | xargs)), $t threads"
for r in $(seq "$rounds"); do
  for cfg in "resnet18 imagenet 3x224x224 1 resnet18_224" "resnet18 small 1x28x28 64 resnet18_28" \
             "mobilenet_v2 imagenet 3x224x224 1 mobilenet_v2_224" "mobilenet_v2 small 1x28x28 64 mobilenet_v2_28"; do
    set -- $cfg
    shape="$4 ${3//x/ }"
    run_ort() { a=$(ort "$5" fp32 $shape); b=$(ort "$5" qdq $shape); }
    run_q() { $q bench --arch "$1" --stem "$2" --input "$3" --batch "$4" --threads "$t" --runs 30 --json > "$out/q.json"; }
    if [ $((r % 2)) -eq 1 ]; then run_ort "$@"; run_q "$@"; else run_q "$@"; run_ort "$@"; fi
    /usr/bin/python3 - "$r" "${5}_b$4" "$a" "$b" "$out/q.json" <<'PY'
import json, sys
r, key, o32, o8, q = sys.argv[1], sys.argv[2], float(sys.argv[3]), float(sys.argv[4]), json.load(open(sys.argv[5]))
for kind, a, b in (("fp32", o32, q["fp32_ms"]), ("int8", o8, q["int8_ms"])):
    print(f"round {r} {key:20s} {kind}  ONNX Runtime {a:8.2f} ms  qforge {b:8.2f} ms  qforge speed-up {a / b:5.2f}x",
          flush=True)
PY
  done
done
