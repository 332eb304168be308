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
# reinstall whenever pyproject.toml changes (new dependencies), not only on a fresh venv
stamp=".venv/.omeio-pyproject.sha256"
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ] || ! .venv/bin/python -c "import omeio, ome_converter" 2>/dev/null; then
    echo "setup: installing the project and its test extras"
    .venv/bin/python -m pip install --quiet -e '.[test]'
    echo "$want" > "$stamp"
fi
.venv/bin/omeio-fetch-jar
# the class-data-sharing archive that halves every later JVM start (see src/omeio/cds.py)
.venv/bin/python -m omeio.cds --if-missing
