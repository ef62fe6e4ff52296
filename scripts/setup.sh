#!/usr/bin/env bash
# Installs what qforge needs from Debian's packages (only what is missing),
# then configures and builds it. Usage: scripts/setup.sh [build-dir] [cmake args...]
set -euo pipefail
cd "$(dirname "$0")/.."
build=${1:-build}
shift || true

pkgs=(g++ gcc cmake make pkg-config libopenblas-dev libstb-dev nlohmann-json3-dev doctest-dev libcli11-dev zlib1g-dev
      libzip-dev libonnx-dev libprotobuf-dev libopenmpi-dev openmpi-bin dataset-fashion-mnist)
missing=()
for p in "${pkgs[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -eq 0 ] || sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
fi

cmake -S . -B "$build" -DCMAKE_BUILD_TYPE=Release "$@" > /dev/null
# QFORGE_TARGETS (e.g. "qforge") limits the build to what a job runs; unset builds everything.
cmake --build "$build" -j"$(nproc)" ${QFORGE_TARGETS:+--target $QFORGE_TARGETS}
