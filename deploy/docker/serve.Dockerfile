# syntax=docker/dockerfile:1
# The serving image: the streaming worker (and the CLI) with onnxruntime, without torch.
# Build from the repository root:
#   docker build -f deploy/docker/serve.Dockerfile -t driftscope-serve .
ARG PYTHON_IMAGE=python:3.11-slim-bookworm

FROM ${PYTHON_IMAGE} AS build
WORKDIR /src
COPY pyproject.toml README.md ./
COPY schemas ./schemas
COPY producers ./producers
COPY streams ./streams
COPY models ./models
COPY consumers ./consumers
COPY driftscope ./driftscope
RUN pip wheel --no-cache-dir --no-deps --wheel-dir /wheels .

FROM ${PYTHON_IMAGE}
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTSCOPE_HOME=/var/lib/driftscope
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/driftscope driftscope \
    && mkdir -p /var/lib/driftscope/blobs \
    && chown -R driftscope:driftscope /var/lib/driftscope
COPY --from=build /wheels /wheels
# the serve extra only: a worker must never pull torch; fail the build if something did
RUN pip install --no-cache-dir "$(ls /wheels/driftscope-*.whl)[serve]" \
    && rm -rf /wheels \
    && python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('torch') is not None)"
USER driftscope
WORKDIR /var/lib/driftscope
ENTRYPOINT ["driftscope"]
CMD ["worker"]
