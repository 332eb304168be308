#!/usr/bin/env bash
# Build the plugin image and tag it <org>/ome-converter-plugin:<VERSION>.
#
# ORG and IMAGE below are the one place the image name is chosen; plugin.json, ict.yaml and
# ome-converter.cwl repeat it with the version (tests/test_manifests.py checks they agree).
# Extra arguments go to `docker build`, e.g. ./build-docker.sh --no-cache
set -euo pipefail

ORG=polusai
IMAGE=ome-converter-plugin

cd "$(dirname "$0")"
version=$(tr -d '[:space:]' < VERSION)
tag="${ORG}/${IMAGE}:${version}"

# refuse to build an image the manifests would not name
for manifest in plugin.json ict.yaml ome-converter.cwl; do
    if ! grep -qF "${tag}" "${manifest}"; then
        echo "build-docker.sh: ${manifest} does not name ${tag}; update it to VERSION ${version}" >&2
        exit 1
    fi
done

echo "build-docker.sh: building ${tag}"
start=$(date +%s)
docker build --build-arg "VERSION=${version}" --tag "${tag}" "$@" .
echo "build-docker.sh: built ${tag} in $(( $(date +%s) - start )) s"
