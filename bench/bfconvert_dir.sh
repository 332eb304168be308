#!/usr/bin/env bash
# bfconvert over a folder: one JVM per input file, $JOBS (default 2) at a time, each file to a
# 1024x1024-tiled, zlib-compressed OME-TIFF named after the input.
#   bfconvert_dir.sh JAR IN OUT
set -euo pipefail
jar=$1 in=$2 out=$3
export jar out
find "$in" -maxdepth 1 -type f ! -name '.*' -print0 | sort -z |
  xargs -0 -r -n 1 -P "${JOBS:-2}" bash -c '
    name=$(basename "$1"); name=${name%%.*}
    exec java -cp "$jar" loci.formats.tools.ImageConverter -no-upgrade \
      -tilex 1024 -tiley 1024 -compression zlib "$1" "$out/$name.ome.tif"' convert
