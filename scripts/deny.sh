#!/usr/bin/env bash
# `make deny`: cargo-deny's licence, ban and source checks (deny.toml),
# installing the pinned cargo-deny first where it is missing (a build of
# about 3 minutes on 2 cores, once per machine).
set -euo pipefail
cd "$(dirname "$0")/.."

VERSION=0.20.2
if [[ "$(cargo deny --version 2>/dev/null)" != "cargo-deny $VERSION" ]]; then
  cargo install --locked --quiet "cargo-deny@$VERSION"
fi
cargo deny check --hide-inclusion-graph licenses bans sources
