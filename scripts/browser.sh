#!/usr/bin/env bash
# The browser the web page's tests drive: Debian's Chromium, launched by Playwright with
# executable_path (Playwright's own browser download cannot work where only package
# registries are reachable).
#
#   scripts/browser.sh install     apt-get install chromium if missing; prints its path
#   scripts/browser.sh path        prints its path; exit 1 (printing nothing) if missing
#
# Idempotent: an installed Chromium is reused (no apt-get update, no network).
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

find_browser() {
  local candidate
  for candidate in "${CAESAR_CHROMIUM:-}" chromium chromium-browser; do
    [[ -n "$candidate" ]] || continue
    if command -v "$candidate" >/dev/null; then
      command -v "$candidate"
      return 0
    fi
  done
  return 1
}

cmd_install() {
  if ! find_browser >/dev/null; then
    log "apt-get install chromium"
    apt-get update -q >&2
    DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium >&2
  fi
  find_browser || die "chromium is still not on PATH after apt-get install"
}

case "${1:-}" in
  install) cmd_install ;;
  path) find_browser ;;
  *) die "usage: scripts/browser.sh install|path" ;;
esac
