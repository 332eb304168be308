#!/usr/bin/env bash
# Set up everything on a fresh machine: a virtualenv in .venv, the project with its test
# extras, and the Bio-Formats jar. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
    echo "setup: creating .venv with $($PY --version)"
    "$PY" -m venv .venv
    .venv/bin/python -m pip install --quiet --upgrade pip
fi
if ! .venv/bin/python -c "import omeio, ome_converter, pytest, hypothesis, xmlschema, yaozarrs, ome_zarr_models" 2>/dev/null; then
    echo "setup: installing the project and its test extras"
    .venv/bin/python -m pip install --quiet -e '.[test]'
fi
.venv/bin/omeio-fetch-jar
