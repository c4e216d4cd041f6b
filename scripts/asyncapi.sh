#!/usr/bin/env bash
# The AsyncAPI validator: the official parser (@asyncapi/parser, from npm) run with node on
# a document, its diagnostics printed as JSON (tools/asyncapi/validate.cjs).
#
#   scripts/asyncapi.sh install            npm ci of tools/asyncapi/package-lock.json
#   scripts/asyncapi.sh installed          exit 0 if installed, 1 if not (prints nothing)
#   scripts/asyncapi.sh validate FILE      diagnostics of FILE as JSON; exit 1 on errors
#   scripts/asyncapi.sh generate FILE      write the service's document (caesar_common.asyncapi)
#
# install puts node_modules in $TOOLS_DIR/asyncapi-<hash of the lock file> (by default
# ~/.cache/caesar-rest/tools), not in the work tree: a present, complete install of the
# same lock is reused, a changed lock gets a directory of its own, and an interrupted one
# is never taken for complete (it is built aside and moved into place when done). npm runs
# with --ignore-scripts: the parser needs no install script (the one in its tree is a
# telemetry ping). Needs node >= 18 and npm, and the npm registry on first install.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOOL_SRC="$REPO/tools/asyncapi"
export SCARF_ANALYTICS=false

install_dir() { npm_tool_dir asyncapi; }

is_installed() { npm_tool_installed asyncapi; }

need_node() {
  command -v node >/dev/null || die "node is not installed (the AsyncAPI parser runs on node >= 18)"
}

cmd_install() {
  need_node
  npm_tool_install asyncapi @asyncapi/parser @asyncapi/parser/package.json
}

cmd_validate() {
  [[ $# -eq 1 ]] || die "usage: scripts/asyncapi.sh validate FILE"
  need_node
  is_installed || die "the AsyncAPI parser is not installed: run scripts/asyncapi.sh install"
  NODE_PATH="$(install_dir)/node_modules" node "$TOOL_SRC/validate.cjs" "$1"
}

cmd_generate() {
  [[ $# -eq 1 ]] || die "usage: scripts/asyncapi.sh generate FILE"
  mkdir -p "$(dirname "$1")"
  "$REPO/.venv/bin/python" -c 'import json, sys
from caesar_common.asyncapi import build_asyncapi
with open(sys.argv[1], "w") as f:
    json.dump(build_asyncapi(), f, indent=2)
    f.write("\n")' "$1"
  log "wrote $1"
}

case "${1:-}" in
  install) cmd_install ;;
  installed) is_installed ;;
  validate) shift; cmd_validate "$@" ;;
  generate) shift; cmd_generate "$@" ;;
  *) die "usage: scripts/asyncapi.sh install|installed|validate FILE|generate FILE" ;;
esac
