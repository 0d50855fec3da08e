#!/usr/bin/env bash
# The main job on the embedded defaults: synthesize the sample dataset, train, export, evaluate, predict.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nexus quickstart "$@"
