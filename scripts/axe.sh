#!/usr/bin/env bash
# axe-core, the accessibility engine the web page's browser tests inject into the page
# (tests/e2e/web_support.py), from npm at the version tools/axe/package-lock.json pins.
#
#   scripts/axe.sh install      npm ci of tools/axe/package-lock.json
#   scripts/axe.sh installed    exit 0 if installed, 1 if not (prints nothing)
#   scripts/axe.sh path         the path of axe.min.js; exit 1 if not installed
#
# As scripts/asyncapi.sh: node_modules go to $TOOLS_DIR/axe-<hash of the lock file> (by
# default ~/.cache/caesar-rest/tools), not the work tree; a complete install of the same
# lock is reused, an interrupted one is never taken for complete (built aside, then moved
# into place). npm runs with --ignore-scripts (axe-core has no install script).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

TOOL_SRC="$REPO/tools/axe"
LOCK="$TOOL_SRC/package-lock.json"
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

install_dir() {
  printf '%s/axe-%s' "$TOOLS_DIR" "$(sha256sum "$LOCK" | cut -c1-16)"
}

script_path() {
  printf '%s/node_modules/axe-core/axe.min.js' "$(install_dir)"
}

is_installed() {
  [[ -f "$(install_dir)/.complete" && -f "$(script_path)" ]]
}

cmd_install() {
  command -v npm >/dev/null || die "npm is not installed"
  local dir tmp
  dir="$(install_dir)"
  if is_installed; then
    log "axe-core already installed in $dir"
    return 0
  fi
  mkdir -p "$TOOLS_DIR"
  tmp="$(mktemp -d "$TOOLS_DIR/.axe-install.XXXXXX")"
  # shellcheck disable=SC2064 # expand now: tmp is local
  trap "rm -rf '$tmp'" EXIT
  cp "$TOOL_SRC/package.json" "$LOCK" "$tmp/"
  log "npm ci axe-core into $dir"
  (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2)
  [[ -f "$tmp/node_modules/axe-core/axe.min.js" ]] || die "npm ci did not install axe-core"
  touch "$tmp/.complete"
  if ! mv -T "$tmp" "$dir" 2>/dev/null; then
    is_installed || die "could not move the install into $dir"
    log "installed concurrently by another run; keeping $dir"
  fi
}

case "${1:-}" in
  install) cmd_install ;;
  installed) is_installed ;;
  path) is_installed && printf '%s\n' "$(script_path)" ;;
  *) die "usage: scripts/axe.sh install|installed|path" ;;
esac
