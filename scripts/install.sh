#!/usr/bin/env bash
# Installs everything the project needs into ./.venv (and Mosquitto when we are root).
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v mosquitto >/dev/null 2>&1 && [ ! -x /usr/sbin/mosquitto ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing Mosquitto (Debian package)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq mosquitto >/dev/null
  else
    echo "== Mosquitto not found and not root: the demo will use its embedded broker," \
         "the broker tests will be skipped" >&2
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
# The CPU build of PyTorch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[classical,onnx,dev]"
