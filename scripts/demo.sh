#!/usr/bin/env bash
# Installs the project and runs the main job: a synthetic inspection through the whole pipeline.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/install.sh
exec .venv/bin/edge demo "$@"
