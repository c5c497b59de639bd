# The orchestrator: `maoctl serve` (REST API and scheduler), with git, git-annex and ssh for the datasets.
#
# Build both images (wheels first, on the host, then installed offline in the image):
#
#   maoctl instance build-images                       # from python:3.11-slim
#   maoctl instance build-images --base-image local/debian:bookworm
#
# or by hand, from this checkout:
#
#   python3 -m pip wheel . -w .wheels
#   docker build -t local/mao -f Dockerfile .          # --build-arg PYTHON_IMAGE=<base>
#
# The base is the official Python image or any Debian-based image (with or without
# Debian's python3, which is then installed with apt). Without wheels in .wheels the
# package is installed from PyPI inside the build instead.
#
# Runs maoctl as the user `mao` (uid 10001): the entry point starts as root only to copy
# the SSH key directory mounted read-only at /keys, whatever its owner on the host, to
# that user's home. `maoctl instance install` writes the compose file that runs it.
ARG PYTHON_IMAGE=python:3.11-slim
FROM ${PYTHON_IMAGE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    PATH=/opt/mao/bin:$PATH

COPY docker/base.sh /usr/local/lib/mao/base.sh
RUN sh /usr/local/lib/mao/base.sh git git-annex openssh-client ca-certificates

COPY . /tmp/mao-src
RUN sh /usr/local/lib/mao/base.sh --install /tmp/mao-src && rm -rf /tmp/mao-src

COPY docker/entrypoint.sh /usr/local/bin/mao-entrypoint
EXPOSE 8080
ENTRYPOINT ["mao-entrypoint"]
CMD ["serve", "--host", "0.0.0.0", "--config", "/config/mao.yaml"]
