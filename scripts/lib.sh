# shellcheck shell=bash disable=SC2034 # the variables are used by the sourcing scripts
# Shared settings and helpers for scripts/*.sh. Source it, don't run it.
# Everything binds to 127.0.0.1 and lives under $RUN_DIR, so several checkouts
# (or CI next to a developer) can coexist by changing CAESAR_RUN_DIR and ports.

# Some CI/cron environments have no HOME; tools, uv's cache and the cookie need one.
: "${HOME:=$(getent passwd "$(id -u)" | cut -d: -f6)}"
export HOME
REPO="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
RUN_DIR="${CAESAR_RUN_DIR:-$REPO/.run}"
LOG_DIR="$RUN_DIR/logs"
PID_DIR="$RUN_DIR/pids"
TOOLS_DIR="${CAESAR_TOOLS_DIR:-$HOME/.cache/caesar-rest/tools}"

# Infrastructure ports.
CAESAR_RABBITMQ_PORT="${CAESAR_RABBITMQ_PORT:-5672}"
CAESAR_RABBITMQ_DIST_PORT="${CAESAR_RABBITMQ_DIST_PORT:-25672}"
CAESAR_RABBITMQ_PROMETHEUS_PORT="${CAESAR_RABBITMQ_PROMETHEUS_PORT:-15692}"
CAESAR_MONGO_PORT="${CAESAR_MONGO_PORT:-27017}"

# Health/HTTP port of each service.
SERVICES=(api scheduler runner monitor accounting)
CAESAR_API_PORT="${CAESAR_API_PORT:-8080}"
CAESAR_SCHEDULER_PORT="${CAESAR_SCHEDULER_PORT:-8081}"
CAESAR_RUNNER_PORT="${CAESAR_RUNNER_PORT:-8082}"
CAESAR_MONITOR_PORT="${CAESAR_MONITOR_PORT:-8083}"
CAESAR_ACCOUNTING_PORT="${CAESAR_ACCOUNTING_PORT:-8084}"

# Credentials: random, one per service and one administrator per server, made on first
# use by scripts/credentials.py into a file only its owner reads (never guest/guest).
# Sourced, not exported: each process gets only the URL it needs.
SECRETS_FILE="$RUN_DIR/secrets.env"
mkdir -p "$RUN_DIR"
python3 "$REPO/scripts/credentials.py" env "$SECRETS_FILE" >/dev/null
# shellcheck source=/dev/null
source "$SECRETS_FILE"

# amqp_url ROLE -> the broker URL of a role (admin, api, ..., subscriber) on vhost /
amqp_url() {
  local var="BROKER_${1^^}_PASSWORD"
  printf 'amqp://caesar-%s:%s@127.0.0.1:%s/' "$1" "${!var:?no broker secret for $1}" "$CAESAR_RABBITMQ_PORT"
}
# mongo_url ROLE -> the database URL of a role (admin or a service); no credentials
# for `none` (the server before its users exist)
mongo_url() {
  local var="DB_${1^^}_PASSWORD" query="retryWrites=false"
  if [[ "$1" == none ]]; then
    printf 'mongodb://127.0.0.1:%s/?%s' "$CAESAR_MONGO_PORT" "$query"
  else
    printf 'mongodb://caesar-%s:%s@127.0.0.1:%s/?authSource=admin&%s' \
      "$1" "${!var:?no database secret for $1}" "$CAESAR_MONGO_PORT" "$query"
  fi
}

# URLs the tests and operator tools connect to: the administrators (a caller's export
# wins). The services get their own users' URLs (scripts/services.sh).
CAESAR_AMQP_URL="${CAESAR_AMQP_URL:-$(amqp_url admin)}"
CAESAR_MONGO_URL="${CAESAR_MONGO_URL:-$(mongo_url admin)}"

# Our own RabbitMQ node, distinct from the Debian default rabbit@<host>. A
# second instance on one machine needs another name (epmd registers names).
RABBIT_NODE="${CAESAR_RABBITMQ_NODE:-caesar@localhost}"
RABBIT_DIR="$RUN_DIR/rabbitmq"

log() { printf '[%s] %s\n' "$(date +%H:%M:%S)" "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# service_port NAME -> that service's HTTP port
service_port() {
  local var="CAESAR_${1^^}_PORT"
  printf '%s' "${!var:?unknown service $1}"
}

# proc_live PID -> true if PID runs. A zombie counts as dead: our detached
# children are reaped by init, which can take a while (here ~1 s).
proc_live() {
  kill -0 "$1" 2>/dev/null && [[ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" != Z ]]
}

# pid_alive PIDFILE [WORD] -> true if the file names a live process (whose
# command line contains WORD, so a recycled pid is never taken for ours)
pid_alive() {
  local pid
  [[ -s "$1" ]] || return 1
  pid="$(<"$1")"
  [[ "$pid" =~ ^[0-9]+$ ]] && proc_live "$pid" || return 1
  [[ -z "${2:-}" ]] || tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF -- "$2"
}

# wait_http URL TIMEOUT [PIDFILE] -> true once URL answers 2xx within TIMEOUT
# seconds; gives up early if the process in PIDFILE dies.
wait_http() {
  local url="$1" timeout="${2:-60}" pidfile="${3:-}" deadline=$((SECONDS + ${2:-60}))
  while ((SECONDS < deadline)); do
    curl -fsS -o /dev/null --max-time 2 "$url" 2>/dev/null && return 0
    if [[ -n "$pidfile" ]] && ! pid_alive "$pidfile"; then
      log "process exited while waiting for $url"
      return 1
    fi
    sleep 0.5
  done
  log "timed out after ${timeout}s waiting for $url"
  return 1
}

# spawn PIDFILE LOGFILE CMD...: run CMD detached (own session, so a Ctrl-C in
# the caller's terminal doesn't reach it; no stdin), appending to LOGFILE, and
# write its pid. The inner sh writes its own pid and then execs CMD, so the pid
# is exact even if setsid has to fork.
spawn() {
  local pidfile="$1" logfile="$2" deadline=$((SECONDS + 10))
  shift 2
  rm -f "$pidfile"
  echo "--- $(date '+%F %T') starting: $*" >>"$logfile"
  setsid nohup sh -c 'echo $$ >"$0"; exec "$@"' "$pidfile" "$@" >>"$logfile" 2>&1 </dev/null &
  until [[ -s "$pidfile" ]] || ((SECONDS >= deadline)); do sleep 0.1; done
}

# await_up PIDFILE WORD LOGFILE TIMEOUT CHECK...: wait until CHECK succeeds while the
# process of PIDFILE lives (WORD as in pid_alive). If it dies, or TIMEOUT seconds pass,
# show the tail of its log, stop it and fail: a half-started daemon is never left behind.
await_up() {
  local pidfile="$1" name="$2" logfile="$3" deadline=$((SECONDS + $4))
  shift 4
  until "$@"; do
    if ! pid_alive "$pidfile" "$name" || ((SECONDS >= deadline)); then
      tail -n 30 "$logfile" >&2 || true
      kill_pidfile "$pidfile" "$name" 5
      return 1
    fi
    sleep 0.2
  done
}

# port_open PORT -> true if something accepts TCP on 127.0.0.1:PORT
port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# kill_pidfile PIDFILE WORD [GRACE]: SIGTERM the process, wait up to GRACE s,
# then SIGKILL. WORD as in pid_alive; also used as its name in messages.
kill_pidfile() {
  local pidfile="$1" name="$2" grace="${3:-15}" pid deadline
  if ! pid_alive "$pidfile" "$name"; then
    rm -f "$pidfile"
    return 0
  fi
  pid="$(<"$pidfile")"
  log "stopping $name (pid $pid)"
  kill -TERM "$pid" 2>/dev/null || true
  deadline=$((SECONDS + grace))
  while proc_live "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
  if proc_live "$pid"; then
    log "$name did not exit in ${grace}s; sending SIGKILL"
    kill -KILL "$pid" 2>/dev/null || true
  fi
  rm -f "$pidfile"
}

# ---------------------------------------------------------------- who started what
# A script's `start` records each thing it started (or found running) in
# $RUN_DIR/started-by-<tag> ($TAG: --tag or $CAESAR_START_TAG); `stop --tag T` stops
# it only once no other tag still records it (e.g. `make up` outlives `make test`).

# record WHAT: tag $TAG uses WHAT
record() {
  mkdir -p "$RUN_DIR"
  local f="$RUN_DIR/started-by-$TAG"
  grep -qsx "$1" "$f" || echo "$1" >>"$f"
}

# release WHAT LABEL -> true if WHAT is to be stopped now: $STOP_TAG's record of it is
# dropped and no other tag records it (plain stop, no tag: every record is dropped)
release() {
  local what="$1" label="$2" f="$RUN_DIR/started-by-$STOP_TAG" other
  if [[ -n "$STOP_TAG" ]]; then
    grep -qsx "$what" "$f" || { log "$label was not started with tag '$STOP_TAG'"; return 1; }
    sed -i "/^$what\$/d" "$f"
    for other in "$RUN_DIR"/started-by-*; do
      [[ -f "$other" ]] && grep -qx "$what" "$other" &&
        { log "$label stays up: still used by ${other##*/started-by-}"; return 1; }
    done
  else
    for other in "$RUN_DIR"/started-by-*; do [[ -f "$other" ]] && sed -i "/^$what\$/d" "$other"; done
  fi
  return 0
}

# ---------------------------------------------------------------- Go tools
# Tools built from the Go module proxy (Jaeger, the Kubernetes test cluster) share one
# recipe: a scratch module that requires them, a Go environment of the build's own
# (modules and cache in the scratch dir, deleted afterwards; no VCS stamping; the installed
# Go, never a toolchain download; no cgo, static binaries), one build at a time under a
# lock, binaries moved into place only once all of them are built.
GO="${CAESAR_GO:-$(command -v go || echo /usr/local/go/bin/go)}"
GO_BUILD_ENV=()

# go_built BINARY MODULE VERSION -> true if BINARY exists and (with Go at hand) its build
# record names MODULE at VERSION: a half-copied or hand-placed file is not taken for it.
go_built() {
  [[ -x "$1" ]] || return 1
  [[ -x "$GO" ]] || return 0
  "$GO" version -m "$1" 2>/dev/null |
    grep -qE "^[[:space:]]+(mod|dep)[[:space:]]+$2[[:space:]]+$3([[:space:]]|$)"
}

# go_in_build ARGS...: run the go command with the build's environment (for SETUP functions)
go_in_build() { "${GO_BUILD_ENV[@]}" "$GO" "$@"; }

# go_build_tools NAME DEST INSTALLED SETUP PACKAGE...: unless INSTALLED (a command) is
# already true, run SETUP (a command, in the scratch module dir, using go_in_build) and
# build every PACKAGE into DEST. The log is $LOG_DIR/NAME-build.log.
go_build_tools() {
  local name="$1" dest="$2" installed="$3" setup="$4"
  shift 4
  "$installed" && return 0
  [[ -x "$GO" ]] || die "Go not found (looked for go on PATH and /usr/local/go/bin/go; set CAESAR_GO)"
  local scratch t0=$SECONDS build_log="$LOG_DIR/$name-build.log" bin
  mkdir -p "$dest" "$LOG_DIR"
  # make test and make up may both ask: the second waits and finds it done. Under the
  # lock, scratch dirs left by an interrupted build are nobody's: delete them.
  exec 9>"$TOOLS_DIR/$name-build.lock"
  flock 9
  if "$installed"; then
    exec 9>&-
    return 0
  fi
  rm -rf "$TOOLS_DIR/$name-build."*/
  scratch="$(mktemp -d "$TOOLS_DIR/$name-build.XXXXXX")"
  GO_BUILD_ENV=(
    env GOPATH="$scratch/go" GOMODCACHE="$scratch/go/pkg/mod" GOCACHE="$scratch/cache"
    GOTMPDIR="$scratch" GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local
    CGO_ENABLED=0 GOENV=off GOWORK=off
  )
  log "building $name from the Go module proxy ($("$GO" version); log: $build_log)"
  if ! (
    cd "$scratch"
    go_in_build mod init "caesar-rest/$name-build"
    "$setup"
    mkdir -p "$scratch/out"
    nice -n 10 "${GO_BUILD_ENV[@]}" "$GO" build -trimpath -ldflags="-s -w" -o "$scratch/out/" "$@"
  ) >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    rm -rf "$scratch"
    exec 9>&-
    die "building $name failed (log: $build_log)"
  fi
  for bin in "$scratch"/out/*; do mv -f "$bin" "$dest/"; done
  rm -rf "$scratch"
  exec 9>&- # unlocked; a daemon started next must not inherit the lock
  "$installed" || die "the binaries built are not $name: $dest"
  log "$name built in $((SECONDS - t0))s: $dest"
}

# ---------------------------------------------------------------- npm tools
# Node tools the tests use (the AsyncAPI parser, axe-core) are installed from a lock file
# in tools/<name>/ into $TOOLS_DIR/<name>-<hash of the lock> (never the work tree): a
# complete install of the same lock is reused, and an interrupted one is never taken for
# complete (built aside, then moved into place). npm runs with --ignore-scripts.
export npm_config_update_notifier=false npm_config_fund=false npm_config_audit=false

# npm_tool_dir NAME -> where NAME's lock is installed
npm_tool_dir() {
  printf '%s/%s-%s' "$TOOLS_DIR" "$1" "$(sha256sum "$REPO/tools/$1/package-lock.json" | cut -c1-16)"
}

# npm_tool_installed NAME -> true if that lock is installed completely
npm_tool_installed() { [[ -f "$(npm_tool_dir "$1")/.complete" ]]; }

# npm_tool_install NAME WHAT CHECK: npm ci of tools/NAME's lock; CHECK is a path under
# node_modules that must exist afterwards; WHAT names the tool in messages.
npm_tool_install() {
  local name="$1" what="$2" check="$3" dir tmp
  command -v npm >/dev/null || die "npm is not installed"
  dir="$(npm_tool_dir "$name")"
  if npm_tool_installed "$name"; then
    log "$what already installed in $dir"
    return 0
  fi
  mkdir -p "$TOOLS_DIR"
  tmp="$(mktemp -d "$TOOLS_DIR/.$name-install.XXXXXX")"
  cp "$REPO/tools/$name/package.json" "$REPO/tools/$name/package-lock.json" "$tmp/"
  log "npm ci $what into $dir"
  if ! (cd "$tmp" && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error >&2) ||
    [[ ! -e "$tmp/node_modules/$check" ]]; then
    rm -rf "$tmp"
    die "npm ci did not install $what"
  fi
  touch "$tmp/.complete"
  # Another install of the same lock may have finished meanwhile: keep that one.
  if ! mv -T "$tmp" "$dir" 2>/dev/null; then
    rm -rf "$tmp"
    npm_tool_installed "$name" || die "could not move the install into $dir"
    log "installed concurrently by another run; keeping $dir"
  fi
}

# ---------------------------------------------------------------- command line
# dispatch USAGE COMMANDS ARG...: the command line of the daemon scripts. Every ARG names
# one of the space-separated COMMANDS (run as cmd_<name>, in order) or is `--tag TAG`,
# which sets the tag start records and stop releases (see record/release above).
dispatch() {
  local usage="$1" known=" $2 " c
  shift 2
  TAG="${CAESAR_START_TAG:-manual}"
  STOP_TAG=""
  local cmds=()
  while (($#)); do
    case "$1" in
      --tag) (($# >= 2)) || die "$usage"; TAG="$2" STOP_TAG="$2"; shift 2 ;;
      *) [[ "$known" == *" $1 "* ]] || die "$usage"; cmds+=("$1"); shift ;;
    esac
  done
  ((${#cmds[@]})) || die "$usage"
  for c in "${cmds[@]}"; do "cmd_$c"; done
}
