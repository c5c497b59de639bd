#!/bin/sh
# Shared steps of the images' builds, so that any Debian-based image can be the base.
#
#   base.sh PACKAGE...        Debian packages, plus python3 and python3-venv when the base
#                             has no Python with venv; a virtualenv in /opt/mao; the user mao
#   base.sh --install SRC     the package into /opt/mao: offline from SRC/.wheels when it
#                             holds wheels (built on the host), else from PyPI
set -eux

if [ "${1:-}" = --install ]; then
    src=$2
    if ls "$src"/.wheels/*.whl >/dev/null 2>&1; then
        /opt/mao/bin/pip install --no-index --find-links "$src/.wheels" mao-orchestrator
    else
        /opt/mao/bin/pip install "$src"
    fi
    /opt/mao/bin/maoctl --help >/dev/null
    exit 0
fi

packages="$*"
if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
    packages="$packages python3 python3-venv"
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
apt-get install -y --no-install-recommends $packages
rm -rf /var/lib/apt/lists/*

python3 -m venv /opt/mao
groupadd --system --gid 10001 mao
useradd --system --uid 10001 --gid mao --home-dir /home/mao --create-home --shell /usr/sbin/nologin mao
