# syntax=docker/dockerfile:1
#
# ROCm base image: Python 3.11, torch built for ROCm, and every dependency of the engine and service extras at the
# versions in constraints.txt, but none of the project's code: docker/rocm/worker.Dockerfile adds that on top, so a
# code change rebuilds in seconds. Rebuild this image when pyproject.toml or constraints.txt change (the worker build
# fails, naming what is missing, when it is older than pyproject.toml).
#
# From the repository root (docker/build-and-push.sh does this):
#   docker build -f docker/rocm/base.Dockerfile -t REGISTRY/silogen-finetuning-rocm-base:TAG .
#
# BASE_IMAGE and TORCH_INDEX_URL go together: torch 2.13 (constraints.txt) is built for ROCm 7.2. The torch wheels
# bring their own ROCm libraries; the ROCm image adds the tools to look at the GPUs (rocm-smi, rocminfo). Ubuntu 22.04
# because its archive has Python 3.11. Run with the GPUs passed through:
#   --device /dev/kfd --device /dev/dri --group-add video --group-add "$(getent group render | cut -d: -f3)"
ARG BASE_IMAGE=rocm/dev-ubuntu-22.04:7.2.4
FROM ${BASE_IMAGE}

ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/rocm7.2
# The user the services run as; volumes are created owned by it.
ARG APP_UID=10001
ARG APP_GID=10001
ARG DEBIAN_FRONTEND=noninteractive

LABEL org.opencontainers.image.title="silogen-finetuning-rocm-base" \
      org.opencontainers.image.description="Python 3.11, torch for ROCm and the dependencies of the Silogen finetuning engine and service; no project code" \
      org.opencontainers.image.vendor="Silogen" \
      ai.silogen.finetuning.platform="rocm" \
      ai.silogen.finetuning.torch-index="${TORCH_INDEX_URL}"

SHELL ["/bin/bash", "-o", "pipefail", "-c"]

ENV PYTHONUNBUFFERED=1 \
    PYTHONDONTWRITEBYTECODE=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:${PATH} \
    HF_HOME=/data/cache/huggingface \
    FINETUNING_CACHE_DIR=/data/cache/finetuning \
    FINETUNING_ARTIFACT_ROOT=/data/artifacts

# tini: PID 1 of the worker, which reaps whatever the engine's process groups leave behind.
RUN apt-get update \
 && apt-get install -y --no-install-recommends ca-certificates python3.11 python3.11-venv tini \
 && rm -rf /var/lib/apt/lists/* \
 && python3.11 -m venv "${VIRTUAL_ENV}" \
 && pip install pip==26.3 setuptools==84.2.1

# torch first, from PyTorch's ROCm index, at the version constraints.txt pins (a local version such as 2.13.0+rocm7.2
# satisfies torch==2.13.0); then the rest from PyPI under the same constraints, which keeps that torch.
COPY pyproject.toml constraints.txt docker/requirements.py /tmp/deps/
RUN grep -E '^torch==' /tmp/deps/constraints.txt > /tmp/deps/torch.txt \
 && pip install --index-url "${TORCH_INDEX_URL}" -r /tmp/deps/torch.txt \
 && python /tmp/deps/requirements.py --pyproject /tmp/deps/pyproject.toml engine service ray > /tmp/deps/requirements.txt \
 && pip install -c /tmp/deps/constraints.txt -r /tmp/deps/requirements.txt \
 && python -c "import torch; assert torch.version.hip, 'not a ROCm build of torch: ' + torch.__version__; print('torch', torch.__version__, 'HIP', torch.version.hip)" \
 && rm -rf /tmp/deps

# video (and, at run time, the host's render group): access to /dev/kfd and /dev/dri.
RUN groupadd --gid "${APP_GID}" finetuning \
 && useradd --uid "${APP_UID}" --gid finetuning --groups video --create-home --shell /usr/sbin/nologin finetuning \
 && mkdir -p /app /data/artifacts /data/inputs /data/cache/huggingface /data/cache/finetuning \
 && chown -R finetuning:finetuning /data

# Numeric, so that Kubernetes' runAsNonRoot can verify it; the worker images switch back to it after installing.
ENV APP_UID=${APP_UID} \
    APP_GID=${APP_GID}
WORKDIR /app
USER ${APP_UID}:${APP_GID}
