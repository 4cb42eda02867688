#!/usr/bin/env bash
# Installs the tools the test suite runs besides cargo: a real Prometheus
# (and promtool) for the scrape test, docker-compose to validate the compose
# file, nginx for the replicas (chaos suite, `make run-replicas`), Chromium
# and its WebDriver for the dashboard's browser test (CHROME_BIN and
# CHROMEDRIVER name another browser, e.g. a CI runner's Chrome). Debian
# packages; needs root (or sudo) when they are missing. PostgreSQL itself is
# the machine's (the tests use its server at 127.0.0.1:5432 and its
# binaries for a private instance).
#
# With arguments, only those tools: `scripts/test-deps.sh nginx`.
set -euo pipefail

declare -A package=([prometheus]=prometheus [promtool]=prometheus
                    [docker-compose]=docker-compose [nginx]=nginx-light
                    [chromium]=chromium [chromedriver]=chromium-driver)
declare -A given=([chromium]=${CHROME_BIN:-} [chromedriver]=${CHROMEDRIVER:-})
tools=("$@")
[ ${#tools[@]} -eq 0 ] && tools=(prometheus promtool docker-compose nginx chromium chromedriver)

missing=()
for tool in "${tools[@]}"; do
  [ -n "${given[$tool]:-}" ] && continue
  command -v "$tool" >/dev/null || [ -x "/usr/sbin/$tool" ] || missing+=("${package[$tool]}")
done
[ ${#missing[@]} -eq 0 ] && exit 0

packages=$(printf '%s\n' "${missing[@]}" | sort -u | tr '\n' ' ')
echo "installing test tools: $packages"
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
export DEBIAN_FRONTEND=noninteractive
$sudo apt-get update -qq
# --no-install-recommends: the tools only, no services started.
$sudo apt-get install -y -qq --no-install-recommends $packages >/dev/null
