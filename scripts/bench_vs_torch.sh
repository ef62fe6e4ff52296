#!/usr/bin/env bash
# qforge against PyTorch 1.13 on this machine, in the same run, as ratios.
# Needs Debian's python3-torch and python3-torchvision (apt-get install); qforge itself never does.
#   scripts/bench_vs_torch.sh [threads]
set -euo pipefail
cd "$(dirname "$0")/.."
t=${1:-2}
q=build/apps/qforge
ref=${TORCH_REFERENCE:-../shared/reference/torch_reference.py}
out=$(mktemp -d)
/usr/bin/python3 "$ref" --threads "$t" > "$out/torch.json"
$q bench --arch resnet18 --input 3x224x224 --batch 1 --threads "$t" --json > "$out/imagenet_b1.json"
$q bench --arch resnet18 --stem small --input 1x28x28 --batch 64 --threads "$t" --json > "$out/fashion_b64.json"
$q bench --arch resnet18 --stem small --input 1x28x28 --batch 128 --train --threads "$t" --json > "$out/train.json"
/usr/bin/python3 - "$out" <<'PY'
import json, sys
d = sys.argv[1]
t = json.load(open(f"{d}/torch.json"))
a, b, c = (json.load(open(f"{d}/{n}.json")) for n in ("imagenet_b1", "fashion_b64", "train"))
rows = [
  ("fp32 ResNet18 224 b1 (ms)", t["fp32_imagenet_224_b1_ms"], a["fp32_ms"], "lower"),
  ("int8 ResNet18 224 b1 (ms)", t["int8_imagenet_224_b1_ms"], a["int8_ms"], "lower"),
  ("fp32 Fashion 28 b64 (ms)", t["fp32_fashion_28_b64_ms"], b["fp32_ms"], "lower"),
  ("int8 Fashion 28 b64 (ms)", t["int8_fashion_28_b64_ms"], b["int8_ms"], "lower"),
  ("fp32 train b128 (img/s)", t["fp32_train_fashion_28_b128_img_per_s"], c["train_img_per_s"], "higher"),
  ("QAT train b128 (img/s)", t["qat_train_fashion_28_b128_img_per_s"], c["qat_train_img_per_s"], "higher"),
]
print(f"{'':30} {'PyTorch':>10} {'qforge':>10} {'qforge speed-up':>16}")
for name, pt, qf, better in rows:
    speedup = pt / qf if better == "lower" else qf / pt
    print(f"{name:30} {pt:10.2f} {qf:10.2f} {speedup:15.2f}x")
print(f"\nqforge int8 vs its own fp32 at 224 b1: {a['fp32_ms'] / a['int8_ms']:.2f}x; "
      f"QAT/fp32 training: {c['qat_train_img_per_s'] / c['train_img_per_s']:.0%}")
print(json.dumps({"torch": t, "qforge": {"imagenet_b1": a, "fashion_b64": b, "train": c}}))
PY
