#!/usr/bin/env bash
# One-time machine setup so a runner started as root can run each job as an
# unprivileged job user (a numeric uid of CAESAR_JOB_UIDS, group $CAESAR_JOB_GROUP).
#
#   scripts/jobuser.sh [install|check] [DIR...]
#
# install (the default) is idempotent:
#  * installs Debian's `acl` package when setfacl is missing (for the grants below;
#    the runner itself writes its ACLs without it);
#  * creates the job group (default caesar-job) when it is missing;
#  * grants the job group traverse-only access (ACL g:<group>:--x, never read) to
#    every ancestor directory of the job interpreter (the venv's python, resolved
#    through its symlinks: e.g. /root for a pyenv python), of the checkout, and of
#    each DIR given, that others cannot traverse. Nothing becomes listable or
#    readable: a job can only pass through these directories to what it needs.
# check only reports what install would change, and exits 1 if anything.
#
# The runner does the rest at its start (it refuses to start when a job user could
# not run the interpreter): it denies the job group its data root (the uploads),
# grants traverse-only on its jobs root, and hands each attempt directory to the
# job user of that attempt. Not root: jobs run as the runner's own user; nothing
# to set up here.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JOB_GROUP="${CAESAR_JOB_GROUP:-caesar-job}"
MODE=install
EXTRA=()
while (($#)); do
  case "$1" in
    install | check) MODE="$1" ;;
    -h | --help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) die "usage: $0 [install|check] [DIR...]" ;;
    *) EXTRA+=("$1") ;;
  esac
  shift
done
CHANGES=0

# change DESCRIPTION CMD...: run CMD (install) or only report it (check).
change() {
  local what="$1"
  shift
  CHANGES=$((CHANGES + 1))
  if [[ "$MODE" == check ]]; then
    log "would: $what"
  else
    log "$what"
    "$@"
  fi
}

ensure_setfacl() {
  command -v setfacl >/dev/null && return 0
  [[ "$MODE" == check ]] && { change "install the acl package (setfacl)" true; return 0; }
  log "installing the acl package (setfacl)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends acl
}

ensure_group() {
  getent group "$JOB_GROUP" >/dev/null && return 0
  change "create the system group $JOB_GROUP" groupadd --system "$JOB_GROUP"
}

# job_python -> the interpreter job steps run (the venv's, else the system python3)
job_python() {
  if [[ -x "$REPO/.venv/bin/python" ]]; then
    printf '%s' "$REPO/.venv/bin/python"
  else
    command -v python3
  fi
}

# grant_ancestors PATH: traverse-only for the job group on each directory from /
# down to PATH (PATH itself if it is a directory) that others cannot traverse.
grant_ancestors() {
  local target dir dirs=()
  target="$(readlink -f -- "$1")" || die "cannot resolve $1"
  [[ -d "$target" ]] && dir="$target" || dir="$(dirname -- "$target")"
  while :; do
    dirs=("$dir" "${dirs[@]}")
    [[ "$dir" == / ]] && break
    dir="$(dirname -- "$dir")"
  done
  for dir in "${dirs[@]}"; do
    # Others may traverse already: nothing to grant (and nothing to narrow).
    (($(stat -c '%a' -- "$dir" | sed 's/^.*\(.\)$/\1/') & 1)) && continue
    getfacl -p -- "$dir" 2>/dev/null | grep -qx "group:$JOB_GROUP:--x" && continue
    change "grant traverse-only to group $JOB_GROUP on $dir (for $1)" \
      setfacl -m "g:$JOB_GROUP:--x" -- "$dir"
  done
}

if (($(id -u) != 0)); then
  log "not root: jobs run as $(id -un) like the runner; nothing to set up"
  exit 0
fi
ensure_setfacl
ensure_group
python="$(job_python)"
grant_ancestors "$python"
grant_ancestors "$(readlink -f -- "$python")"
grant_ancestors "$REPO"
for d in "${EXTRA[@]}"; do grant_ancestors "$d"; done
if [[ "$MODE" == check ]]; then
  ((CHANGES == 0)) || { log "$CHANGES change(s) needed: run $0 install"; exit 1; }
  log "job users ready: group $JOB_GROUP, interpreter $python"
else
  log "job users ready: group $JOB_GROUP ($(getent group "$JOB_GROUP" | cut -d: -f3)), interpreter $python"
fi
