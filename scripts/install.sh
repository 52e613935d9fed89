#!/usr/bin/env bash
# Installs everything the project needs into ./.venv (and Mosquitto when we are root).
# Idempotent: a second run only checks what is already there.
set -euo pipefail
cd "$(dirname "$0")/.."

# System packages: the broker, libjpeg-turbo, and the tools the tests use (systemd-analyze, openssl for TLS).
missing=()
command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ] || missing+=(mosquitto)
command -v systemd-analyze >/dev/null 2>&1 || missing+=(systemd)
command -v openssl >/dev/null 2>&1 || missing+=(openssl)
# libjpeg-turbo's TurboJPEG library: jpeg-exact edits the camera's DCT blocks through it.
# (grep without -q reads all of ldconfig's output: under pipefail an early exit would fail ldconfig.)
ldconfig -p 2>/dev/null | grep "libturbojpeg\.so" >/dev/null || missing+=(libturbojpeg0)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then
    echo "== installing ${missing[*]} (Debian packages)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
  else
    echo "== not installed: ${missing[*]} (not root or no apt-get): the demo uses its embedded broker," \
         "tests that need these tools are skipped" >&2
  fi
fi

python3 -m venv .venv
. .venv/bin/activate
# The CPU build of PyTorch first: a bare 'torch' requirement would pull a multi-GB CUDA build.
pip install -q "torch==2.13.0"
pip install -q -e ".[classical,onnx,dev,pretrained]"
