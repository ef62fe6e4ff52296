#!/usr/bin/env bash
# The ONNX export end to end (ctest onnx_runtime):
#   test_onnx_export.sh QFORGE REFERENCE_LOGITS SOURCE_DIR HAVE_ONNX
# makes tiny int8 ResNet18 and MobileNetV2 models (80 training steps on Fashion-MNIST, then PTQ
# calibration), exports them and their float checkpoints with `qforge export --format onnx`, checks
# the files with the onnx checker (/usr/bin/python3 with onnx, when present) and runs them in ONNX
# Runtime (npm onnxruntime-node, installed without its install script into a cache folder) on the
# same 256 test images as qforge: int8 logits within ONNX_MAX_STEPS quantization steps of the
# output and top-1 agreement >= ONNX_MIN_AGREE; float logits within 1e-4 of the largest |logit|.
# Exits 77 (ctest: skipped) without ONNX support in the build, Fashion-MNIST, node, npm or the package.
set -euo pipefail
qforge=$1 reference=$2 src=$3 have_onnx=${4:-OFF}
here=$(dirname "$(readlink -f "$0")")
skip() { echo "SKIPPED: $*"; exit 77; }

[ "$have_onnx" = ON ] || skip "qforge built without ONNX support (libonnx-dev, libprotobuf-dev)"
[ -f /usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz ] || skip "Fashion-MNIST not installed"
command -v node > /dev/null || skip "node not installed"
cache=${QFORGE_ORT_CACHE:-${TMPDIR:-/tmp}/qforge-ort-reference}
if [ ! -f "$cache/node_modules/onnxruntime-node/package.json" ]; then
  command -v npm > /dev/null || skip "npm not installed"
  mkdir -p "$cache"
  (cd "$cache" && npm install --no-audit --no-fund --silent --ignore-scripts onnxruntime-node@1.30.0 >&2) ||
    skip "npm install onnxruntime-node@1.30.0 failed (offline?)"
fi
export NODE_PATH="$cache/node_modules"
node -e "require('onnxruntime-node')" 2> /dev/null || skip "onnxruntime-node does not load on this machine"
checker=""
/usr/bin/python3 -c "import onnx, numpy" 2> /dev/null && checker=/usr/bin/python3 ||
  echo "note: /usr/bin/python3 with onnx missing: onnx checker and fusion checks skipped"

# Limits: ONNX Runtime requantizes in float (half to even), qforge in 64-bit fixed point (half up):
# ties, float error and ONNX Runtime's residual-add kernel move a few values per layer one step,
# and later layers carry and spread these steps. Measured here with the earlier two-rounding
# requantization (ORT 1.30.0, AVX-512 VNNI): ResNet18 98.4% top-1 agreement, at most 2 steps;
# MobileNetV2 98.4%, at most 4 steps (on 256 images of 80-step models, so one image is 0.4%).
max_steps=${ONNX_MAX_STEPS:-6}
min_agree=${ONNX_MIN_AGREE:-0.96}

work=$(mktemp -d "${TMPDIR:-/tmp}/qforge_onnx_XXXXXX")
trap 'rm -rf "$work"' EXIT
run() { "$qforge" "$@" > "$work/log" 2>&1 || { cat "$work/log"; echo "FAILED: qforge $*"; exit 1; }; }

status=0
# 80 steps at a constant learning rate: models that classify (about 68% / 56% top-1 on these
# images), so top-1 agreement means something.
for arch in resnet18 mobilenet_v2; do
  if [ $arch = resnet18 ]; then cfg=tiny lr=0.05; else cfg=tiny_mobilenet_v2 lr=0.1; fi
  m="$work/$arch"
  run train "$src/configs/$cfg.json" --max-steps 80 --set optim.schedule.kind=constant --set optim.lr=$lr \
    --set output.dir="$m/float" --set train.threads=1
  run ptq "$src/configs/${cfg}_ptq.json" --set model.init_from="$m/float/last.safetensors" \
    --set output.dir="$m/ptq" --set train.threads=1 --set quant.calibration_batches=4
  run export --model "$m/ptq/model.qfm" --format onnx --out "$m/int8.onnx"
  run export --model "$m/float/last.safetensors" --format onnx --out "$m/float.onnx"
  "$reference" "$m/ptq/model.qfm" "$m/int8" 256 test
  "$reference" "$m/float/last.safetensors" "$m/float" 256 test
  echo "== $arch"
  node "$here/run_ort.js" "$m/int8.onnx" "$m/int8" int8 "$max_steps" "$min_agree" "$m/int8_ort.onnx" 2> /dev/null ||
    status=1
  node "$here/run_ort.js" "$m/float.onnx" "$m/float" float 1e-4 2> /dev/null || status=1
  if [ -n "$checker" ]; then
    $checker "$here/check_onnx.py" "$m/int8.onnx" int8 "$m/int8_ort.onnx" || status=1
    $checker "$here/check_onnx.py" "$m/float.onnx" float || status=1
  fi
done
# An int8 graph with a float classifier (quant.skip): Dequantize, then a float Gemm.
m="$work/resnet18"
run ptq "$src/configs/tiny_ptq.json" --set model.init_from="$m/float/last.safetensors" --set 'quant.skip=["fc"]' \
  --set output.dir="$m/skip" --set train.threads=1 --set quant.calibration_batches=4
run export --model "$m/skip/model.qfm" --format onnx --out "$m/skip.onnx"
"$reference" "$m/skip/model.qfm" "$m/skip" 256 test
echo "== resnet18, fc kept in float"
node "$here/run_ort.js" "$m/skip.onnx" "$m/skip" int8 0 "$min_agree" 2> /dev/null || status=1
[ -z "$checker" ] || $checker "$here/check_onnx.py" "$m/skip.onnx" int8 || status=1
# A prepared (fake-quant) checkpoint has no ONNX export: the error says what to export instead.
if "$qforge" export --model "$m/ptq/ptq.safetensors" --format onnx --out "$work/ptq.onnx" > "$work/log" 2>&1 ||
  ! grep -q "checkpoint (fake-quant simulation) has no ONNX export; convert it to int8" "$work/log" ||
  [ -e "$work/ptq.onnx" ]; then
  cat "$work/log"
  echo "FAILED: export --format onnx of a ptq checkpoint"
  status=1
fi
[ $status = 0 ] && echo "PASSED" || echo "FAILED"
exit $status
