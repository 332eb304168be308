# OME converter WIPP plugin: any Bio-Formats-readable image -> 1024x1024-tiled OME-TIFF / OME-Zarr.
# Build with ./build-docker.sh (it passes VERSION); run: docker run IMAGE --inpDir ... --outDir ...
#
# Two stages: the build stage has network access and pip's caches, the final image gets only the
# virtualenv and the Bio-Formats jar, so no wheel cache, sources or build tools end up in it.

FROM python:3.11-slim-bookworm AS build

ENV PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

# .dockerignore lets in only what the wheel needs: pyproject.toml, VERSION, README.md, src/
COPY . /src

# A virtualenv, so that the final stage can copy the installed project in one piece.
# The jar is fetched at build time with the command the README documents: WIPP and cluster
# nodes are often offline, so nothing may be downloaded at run time.
RUN python3 -m venv /opt/venv \
    && /opt/venv/bin/pip install /src \
    && /opt/venv/bin/omeio-fetch-jar --dest /opt/omeio \
    && /opt/venv/bin/pip uninstall --yes pip setuptools


FROM python:3.11-slim-bookworm

ARG VERSION=unknown

LABEL org.opencontainers.image.title="ome-converter-plugin" \
      org.opencontainers.image.description="WIPP plugin: convert any Bio-Formats-readable image to 1024x1024-tiled OME-TIFF or OME-Zarr" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.licenses="MIT" \
      org.opencontainers.image.vendor="polusai"

# Bio-Formats runs in a JVM started in-process by JPype; headless, no recommends keeps it small.
# DL3008 (pin apt versions): Debian security updates remove old versions, so a pin breaks rebuilds.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends openjdk-17-jre-headless \
    && rm -rf /var/lib/apt/lists/* /var/cache/apt/archives/*.deb

# Numeric UID so that Kubernetes' runAsNonRoot can verify it; any other UID works as well
# (docker run --user), since nothing is written outside /tmp and --outDir.
RUN groupadd --gid 1000 converter \
    && useradd --uid 1000 --gid 1000 --no-log-init --create-home --shell /usr/sbin/nologin converter

COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/omeio /opt/omeio

# WIPP defaults (POLUS_*), the baked-in jar, and caches in /tmp: the JVM and omeio must not try to
# write to a HOME that is read-only or missing (arbitrary UIDs, read-only root file systems).
ENV PATH=/opt/venv/bin:$PATH \
    BIOFORMATS_JAR=/opt/omeio/bioformats_package.jar \
    OMEIO_CACHE_DIR=/tmp/omeio-cache \
    XDG_CACHE_HOME=/tmp/.cache \
    POLUS_IMG_EXT=.ome.tif \
    POLUS_TAB_EXT=.csv \
    POLUS_LOG=INFO \
    PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1

# Bio-Formats' classes as a class-data-sharing archive next to the jar (omeio/cds.py): every run
# of the image starts with an empty cache, so the archive is made once here, for the JVM above.
RUN python3 -m omeio.cds \
    && rm -rf /tmp/hsperfdata_root /tmp/omeio-cache /tmp/.cache

USER 1000:1000
WORKDIR /tmp

ENTRYPOINT ["python3", "-m", "ome_converter"]
CMD ["--help"]
