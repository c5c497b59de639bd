# The orchestrator: `maoctl serve` (REST API and scheduler), with git and ssh for the datasets.
#
#   docker build -t local/mao -f Dockerfile .
#
# Runs as root: it reads the SSH key directory mounted read-only at /keys, whatever
# its owner on the host. `maoctl instance install` writes the compose file that runs it.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1

RUN apt-get update \
 && apt-get install -y --no-install-recommends git openssh-client ca-certificates \
 && rm -rf /var/lib/apt/lists/*

COPY . /tmp/mao-src
RUN pip install /tmp/mao-src && rm -rf /tmp/mao-src

EXPOSE 8080
ENTRYPOINT ["maoctl"]
CMD ["serve", "--host", "0.0.0.0", "--config", "/config/mao.yaml"]
