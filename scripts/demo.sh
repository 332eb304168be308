#!/usr/bin/env bash
# Set up (if needed), make a small mixed sample collection, convert it with the plugin,
# and print what was written. Outputs land in sample/out (OME-TIFF) and sample/out-zarr.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
rm -rf sample
.venv/bin/python scripts/make_sample.py sample/in
.venv/bin/python -m ome_converter --inpDir sample/in --filePattern '.+' --outDir sample/out \
    --fileExtension .ome.tif
.venv/bin/python -m ome_converter --inpDir sample/in --filePattern '.+' --outDir sample/out-zarr \
    --fileExtension .ome.zarr
echo "demo: $(ls sample/out | wc -l) OME-TIFF files in sample/out, $(ls sample/out-zarr | wc -l) OME-Zarr stores in sample/out-zarr"
