#!/usr/bin/env bash
# Installs the tools the test suite runs besides cargo: a real Prometheus
# (and promtool) for the scrape test, docker-compose to validate the compose
# file, nginx for the replicas (chaos suite, `make run-replicas`). Debian
# packages; needs root (or sudo) when they are missing. PostgreSQL itself is
# the machine's (the tests use its server at 127.0.0.1:5432 and its
# binaries for a private instance).
set -euo pipefail

missing=()
command -v prometheus >/dev/null || missing+=(prometheus)
command -v promtool >/dev/null || missing+=(prometheus)
command -v docker-compose >/dev/null || missing+=(docker-compose)
command -v nginx >/dev/null || [ -x /usr/sbin/nginx ] || missing+=(nginx-light)
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "installing test tools: $packages"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends: Prometheus only as a binary, no services started.
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
