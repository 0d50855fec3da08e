#!/usr/bin/env bash
# Set up, lint and run the whole test suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
bash scripts/install-services.sh
.venv/bin/ruff check .
exec .venv/bin/python -m pytest -q -n 2 --durations=15 "$@"
