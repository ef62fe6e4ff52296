#!/usr/bin/env bash
# The main job: build, train ResNet18 on Fashion-MNIST, fine-tune it with QAT,
# convert it to an int8 model, evaluate both and benchmark them side by side.
# Steps already finished (their outputs exist) are reused.
#   scripts/run_all.sh           the full recipe (configs/resnet18_fashion*.json)
#   scripts/run_all.sh --quick   the tiny configs, in about a minute
set -euo pipefail
cd "$(dirname "$0")/.."
QFORGE_TARGETS=qforge scripts/setup.sh build  # the job runs only the qforge command
q=build/apps/qforge

if [ "${1:-}" = "--quick" ]; then
  float_cfg=configs/tiny.json qat_cfg=configs/tiny_qat.json float_dir=runs/tiny qat_dir=runs/tiny_qat
else
  float_cfg=configs/resnet18_fashion.json qat_cfg=configs/resnet18_fashion_qat.json
  float_dir=runs/resnet18_fashion qat_dir=runs/resnet18_fashion_qat
fi

step() { printf '\n== %s\n' "$*"; }

# A training run is finished when its last checkpoint has reached the configured epochs.
finished() {  # dir config
  [ -f "$1/last.safetensors" ] || return 1
  local want got
  want=$(grep -o '"epochs": *[0-9]*' "$2" | grep -o '[0-9]*$' || echo 1)
  got=$($q info "$1/last.safetensors" 2>/dev/null | awk '$1=="epoch"{print $2}')
  [ "$got" = "$want" ]
}

step "1/4 float training: $float_cfg"
if finished "$float_dir" "$float_cfg"; then echo "reusing $float_dir/last.safetensors"
elif [ -f "$float_dir/last.safetensors" ]; then $q train "$float_cfg" --resume
else $q train "$float_cfg"; fi

step "2/4 QAT fine-tuning and conversion: $qat_cfg"
if finished "$qat_dir" "$qat_cfg"; then
  if [ -f "$qat_dir/model.qfm" ]; then echo "reusing $qat_dir/model.qfm"
  else $q convert --model "$qat_dir/last.safetensors" --out "$qat_dir/model.qfm"; fi
elif [ -f "$qat_dir/last.safetensors" ]; then $q qat "$qat_cfg" --resume
else $q qat "$qat_cfg"; fi

step "3/4 evaluation of the int8 model"
$q eval --model "$qat_dir/model.qfm" --data "$float_cfg"

step "4/4 float32 against int8"
$q bench --model "$float_dir/last.safetensors" --int8 "$qat_dir/model.qfm" --data "$float_cfg" --batch 64
