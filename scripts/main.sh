#!/usr/bin/env bash
# The main job on the embedded defaults: the Kubeflow `training` pipeline run locally (synthesize the
# sample dataset, train, export, evaluate, gate, register in MLflow, deploy), then the champion served
# on localhost in the background. `nexus deploy down` stops it.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/nexus pipeline run training --serve "$@"
