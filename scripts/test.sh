#!/usr/bin/env bash
# Set up (if needed) and run the whole test suite, then ruff.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check src tests bench fuzz scripts
.venv/bin/python -m pytest "$@"
