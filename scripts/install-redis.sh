#!/usr/bin/env bash
# Install redis-server when it is missing: the shared budget store's tests start a real one on a
# free loopback port (airflow_provider_clova/testing/servers.py), as they do the emulator and moto.
# Debian's package (root, or sudo); elsewhere, install Redis yourself (e.g. brew install redis).
set -euo pipefail
command -v redis-server >/dev/null 2>&1 && exit 0
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if command -v apt-get >/dev/null 2>&1; then
  echo "== installing redis-server (Debian package)" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends redis-server >/dev/null
else
  echo "redis-server is missing and apt-get is not available: install Redis, then run make test again" >&2
  exit 1
fi
