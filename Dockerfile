# One image for every service of docker-compose.yml (code server, webserver, daemon) and for the
# containers the Docker run launcher starts for each run. Installed the way `make install` does it
# (uv at the Makefile's pinned version), but the project non-editable, without the dev extra, with
# both run launchers (Docker for compose, Kubernetes for deploy/helm/).
# vk_pipeline_tests/test_project_files.py runs the build stage's RUN commands and the CMD in a
# plain venv, so keep paths in ENV variables rather than literals in RUN lines.
# No `# syntax=` line: it would make BuildKit pull a frontend image from a registry, and the engine's
# built-in frontend has everything used here (RUN --mount included), so the build also works offline.
# The base: any image with Python 3.11 at `python` (the stack test passes a stand-in it builds).
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
ARG UV_VERSION=0.13.9
# CA certificates (PEM text) that the downloads from PyPI trust besides the base image's, for a
# network that intercepts TLS; none by default. Build stage only: the runtime image never has them.
#   docker build --build-arg CA_CERTIFICATES="$(cat /usr/local/share/ca-certificates/*.crt)" .
ARG CA_CERTIFICATES=
# pip and uv read the system's bundle (by default pip has its own copy and uv its built-in roots).
ENV VIRTUAL_ENV=/opt/venv \
    DAGSTER_HOME=/opt/dagster/home \
    UV_LINK_MODE=copy \
    PIP_CERT=/etc/ssl/certs/ca-certificates.crt \
    SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt
WORKDIR /src
# uv lives in the build stage only; the runtime image gets the finished venv.
RUN if [ -n "$CA_CERTIFICATES" ]; then printf '%s\n' "$CA_CERTIFICATES" >> "$SSL_CERT_FILE"; fi \
 && python -m venv "$VIRTUAL_ENV" \
 && python -m pip install --no-cache-dir --disable-pip-version-check "uv==$UV_VERSION"
COPY pyproject.toml README.md ./
COPY vk_pipeline ./vk_pipeline
# The cache mount keeps uv's download cache out of the image (and warm between builds).
RUN --mount=type=cache,target=/root/.cache/uv \
    python -m uv pip install --compile-bytecode --python "$VIRTUAL_ENV/bin/python" ".[docker,k8s]"
# The instance: the project's dagster.yaml plus the Docker run launcher; the gRPC workspace.
COPY dagster.yaml ./
COPY deploy/dagster-docker.yaml deploy/workspace.yaml ./deploy/
RUN mkdir -p "$DAGSTER_HOME" \
 && cat dagster.yaml deploy/dagster-docker.yaml > "$DAGSTER_HOME/dagster.yaml" \
 && cp deploy/workspace.yaml "$DAGSTER_HOME/workspace.yaml"

FROM ${PYTHON_IMAGE}
ENV VIRTUAL_ENV=/opt/venv \
    DAGSTER_HOME=/opt/dagster/home \
    VK_PIPELINE_DROP_DIR=/data/drops \
    PYTHONUNBUFFERED=1 \
    PATH=/opt/venv/bin:$PATH
RUN useradd --create-home --uid 1000 --user-group dagster \
 && mkdir -p "$VK_PIPELINE_DROP_DIR" \
 && chown dagster:dagster "$VK_PIPELINE_DROP_DIR"
COPY --from=build /opt/venv /opt/venv
COPY --from=build /opt/dagster/home /opt/dagster/home
USER dagster
WORKDIR /opt/dagster/home
EXPOSE 3000 4000
# The code server; docker-compose.yml gives the webserver and the daemon their own commands.
# Host and port: DAGSTER_CODE_SERVER_HOST / DAGSTER_CODE_SERVER_PORT.
CMD ["dagster", "code-server", "start", "-m", "vk_pipeline.definitions", "--location-name", "vk_pipeline"]
