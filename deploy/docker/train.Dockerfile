# syntax=docker/dockerfile:1
# The training image: the trainer with CUDA torch. PyPI's Linux x86_64 torch wheels are CUDA
# builds (the CUDA runtime comes as nvidia-* wheels), so the host needs only the NVIDIA driver and
# the container toolkit. To pin another CUDA variant, pass an index:
#   docker build -f deploy/docker/train.Dockerfile --build-arg TORCH_INDEX_URL=<wheel index> .
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
ARG TORCH_INDEX_URL=
ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    DRIFTSCOPE_HOME=/var/lib/driftscope \
    NVIDIA_VISIBLE_DEVICES=all \
    NVIDIA_DRIVER_CAPABILITIES=compute,utility
RUN useradd --system --uid 10001 --user-group --home-dir /var/lib/driftscope driftscope \
    && mkdir -p /var/lib/driftscope/blobs \
    && chown -R driftscope:driftscope /var/lib/driftscope
COPY --from=build /wheels /wheels
# serve for the ONNX export parity check and the runners, train for torch
RUN pip install --no-cache-dir ${TORCH_INDEX_URL:+--extra-index-url "$TORCH_INDEX_URL"} \
        "$(ls /wheels/driftscope-*.whl)[serve,train]" \
    && rm -rf /wheels \
    && python -c "import sys, torch; print('torch', torch.__version__, 'cuda', torch.version.cuda); sys.exit(torch.version.cuda is None)"
USER driftscope
WORKDIR /var/lib/driftscope
ENTRYPOINT ["driftscope"]
CMD ["trainer"]
