# syntax=docker/dockerfile:1
#
# bme-oracle container image.
#
#   docker build -t bme-oracle:local .
#   docker run --rm bme-oracle:local --help
#
# Stage 1 (builder) builds the bme-oracle wheel and a wheel for every dependency, at
# the versions pinned in requirements/constraints-runtime.txt (scripts/lock), so every
# build of a commit gets the same packages.
# Stage 2 (runtime) installs exactly those wheels, offline and under the same
# constraints, into /opt/bme-oracle: no compiler, no source tree, no build tools,
# nothing from the network.
#
# Configuration: mount a TOML file at /etc/bme-oracle/oracle.toml (see
# docs/operations.md and deploy/oracle.mainnet.toml) and pass ORACLE_<SECTION>__<KEY>
# environment variables; secrets come from files (docker secrets under /run/secrets,
# named by the *_file keys) or the environment, never from the image.
# The API listens on 0.0.0.0 inside the container; change its port with
# ORACLE_API__PORT (the HEALTHCHECK reads the same variable).

ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS builder
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_ROOT_USER_ACTION=ignore
WORKDIR /src
COPY pyproject.toml README.md ./
COPY requirements/constraints-runtime.txt requirements/
COPY oracle/ oracle/
# The package's own wheel first, then wheels for all of its dependencies at the pinned
# versions (binary wheels where published, built here otherwise) so the runtime stage
# needs no index.
RUN pip wheel --no-deps --wheel-dir /dist . \
    && pip wheel --constraint requirements/constraints-runtime.txt --wheel-dir /wheels \
       /dist/bme_oracle-*.whl

FROM ${PYTHON_IMAGE} AS runtime
LABEL org.opencontainers.image.title="bme-oracle" \
      org.opencontainers.image.description="Bitcoin difficulty oracle: retargets, BME indices, on-chain publication" \
      org.opencontainers.image.licenses="MIT"
ENV PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PIP_NO_CACHE_DIR=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/bme-oracle/bin:$PATH \
    ORACLE_API__HOST=0.0.0.0
# A fixed numeric uid/gid so volume and secret-file permissions can be set on the host.
RUN groupadd --system --gid 10001 oracle \
    && useradd --system --uid 10001 --gid 10001 --home-dir /var/lib/bme-oracle \
       --create-home --shell /usr/sbin/nologin oracle \
    && mkdir -p /etc/bme-oracle
# The wheels and the constraints are bind-mounted from the builder, so they never
# become an image layer.
RUN --mount=type=bind,from=builder,source=/wheels,target=/wheels \
    --mount=type=bind,from=builder,source=/src/requirements,target=/requirements \
    python -m venv /opt/bme-oracle \
    && /opt/bme-oracle/bin/pip install --no-index --find-links=/wheels \
       --constraint /requirements/constraints-runtime.txt /wheels/bme_oracle-*.whl \
    && bme-oracle --version

USER 10001:10001
WORKDIR /var/lib/bme-oracle
EXPOSE 8080
HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:%s/health' % os.environ.get('ORACLE_API__PORT', '8080'), timeout=4)"]
ENTRYPOINT ["bme-oracle"]
CMD ["run", "--config", "/etc/bme-oracle/oracle.toml"]
