#!/usr/bin/env bash
# axe-core, the accessibility engine the web page's browser tests inject into the page
# (tests/e2e/web_support.py), from npm at the version tools/axe/package-lock.json pins.
#
#   scripts/axe.sh install      npm ci of tools/axe/package-lock.json
#   scripts/axe.sh installed    exit 0 if installed, 1 if not (prints nothing)
#   scripts/axe.sh path         the path of axe.min.js; exit 1 if not installed
#
# node_modules go to $TOOLS_DIR/axe-<hash of the lock file> (lib.sh npm_tool_install; by
# default ~/.cache/caesar-rest/tools), not the work tree. axe-core has no install script.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

script_path() { printf '%s/node_modules/axe-core/axe.min.js' "$(npm_tool_dir axe)"; }

is_installed() { npm_tool_installed axe && [[ -f "$(script_path)" ]]; }

case "${1:-}" in
  install) npm_tool_install axe axe-core axe-core/axe.min.js ;;
  installed) is_installed ;;
  path) is_installed && printf '%s\n' "$(script_path)" ;;
  *) die "usage: scripts/axe.sh install|installed|path" ;;
esac
