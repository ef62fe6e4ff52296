#!/usr/bin/env bash
# qforge against ONNX Runtime 1.30 on this machine, ResNet18 and MobileNetV2, fp32 and int8 (QDQ),
# at 3x224x224 batch 1 and 1x28x28 batch 64: rounds that alternate the two, one line per figure.
# Needs what ../shared/reference/ort_reference.sh needs (nodejs npm, python3-torch, python3-onnx);
# qforge itself never does.
#   scripts/bench_vs_ort.sh [rounds] [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3} t=${2:-2}
q=build/apps/qforge
ref=${ORT_REFERENCE:-../shared/reference/ort_reference.sh}
out=$(mktemp -d)
echo "CPU: $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs) (family $(grep -m1 'cpu family' /proc/cpuinfo | cut -d: -f2 | xargs), model $(grep -m1 '^model' /proc/cpuinfo | cut -d: -f2 | xargs)), $t threads"
for r in $(seq "$rounds"); do
  bash "$ref" "$t" > "$out/ort_$r.json" 2> "$out/ort_$r.log"
  for cfg in "resnet18 imagenet 3x224x224 1 resnet18_224_b1" "resnet18 small 1x28x28 64 resnet18_28_b64" \
             "mobilenet_v2 imagenet 3x224x224 1 mobilenet_v2_224_b1" "mobilenet_v2 small 1x28x28 64 mobilenet_v2_28_b64"; do
    set -- $cfg
    $q bench --arch "$1" --stem "$2" --input "$3" --batch "$4" --threads "$t" --runs 30 --json > "$out/q_${r}_$5.json"
    /usr/bin/python3 - "$r" "$5" "$out/ort_$r.json" "$out/q_${r}_$5.json" <<'PY'
import json, sys
r, key, o, q = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
for kind, qk in (("fp32", "fp32_ms"), ("qdq", "int8_ms")):
    a, b = o[f"{kind}_{key}_ms"], q[qk]
    print(f"round {r} {key:20s} {'fp32' if kind == 'fp32' else 'int8'}  ONNX Runtime {a:8.2f} ms  "
          f"qforge {b:8.2f} ms  qforge speed-up {a / b:5.2f}x", flush=True)
PY
  done
done
