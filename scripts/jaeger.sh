#!/usr/bin/env bash
# A local Jaeger for the services' traces: the Jaeger v2 binary (cmd/jaeger, built on the
# OpenTelemetry Collector) built once from the Go module proxy, in-memory storage, and
# every listener on 127.0.0.1:
#
#   OTLP/HTTP receiver  127.0.0.1:$CAESAR_JAEGER_OTLP_PORT (4318)        the services export here
#   UI and query API    127.0.0.1:$CAESAR_JAEGER_UI_PORT (16686)         /api/traces, /api/services
#   query gRPC API      127.0.0.1:$CAESAR_JAEGER_QUERY_GRPC_PORT (16685) jaeger_query always serves it
#
# and nothing else: of the all-in-one defaults, OTLP gRPC (4317), the Jaeger (14250, 14268,
# 6831, 6832) and Zipkin (9411) receivers, remote sampling (5778, 5779), the health check
# (13133), expvar (27777), zpages (27778) and the collector's own metrics (8888) are all
# left out; jaeger_query's own tracing is off (it would export to localhost:4317).
#
#   scripts/jaeger.sh install|installed|start|stop|status|env|url|config [--tag TAG]
#
# install: build github.com/jaegertracing/jaeger/cmd/jaeger@$CAESAR_JAEGER_VERSION into
#   $TOOLS_DIR/jaeger-<version>/jaeger, once (about five minutes of two cores). `go install
#   pkg@version` refuses the module (its go.mod has replace directives), so the build goes
#   through a scratch module that requires it as a tool. GOPATH, GOCACHE and GOFLAGS point
#   into a scratch dir in the tools dir, deleted afterwards (1.3 GB of modules and cache):
#   nothing lands in the checkout or in ~/go, and only the binary is kept.
# installed: print the binary's path if it is built (exit 1 if not): tests ask this
#   rather than start a five-minute build.
# start: run it (building first if needed) with its config under $RUN_DIR/jaeger, log
#   $LOG_DIR/jaeger.log, pid file $PID_DIR/jaeger.pid; waits until the query API answers
#   and the OTLP port accepts. Records itself in $RUN_DIR/started-by-<tag> like
#   scripts/infra.sh; `stop --tag T` stops it only if no other tag still records it.
#   Traces live in memory: a restart forgets them.
# env: the variables that make the services export here (OTEL_EXPORTER_OTLP_ENDPOINT).
# config: print the configuration start writes (for a look, and the unit tests).
# url: the UI's address. A binary built from the module proxy has no UI assets (they are
#   built from the jaeger-ui repository at release time), so the address serves Jaeger's
#   placeholder page; the query API under /api is complete. docker-compose.yml runs the
#   released image, with the UI.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

JAEGER_VERSION="${CAESAR_JAEGER_VERSION:-v1.76.0}"
JAEGER_MODULE=github.com/jaegertracing/jaeger
JAEGER_OTLP_PORT="${CAESAR_JAEGER_OTLP_PORT:-4318}"
JAEGER_UI_PORT="${CAESAR_JAEGER_UI_PORT:-16686}"
JAEGER_QUERY_GRPC_PORT="${CAESAR_JAEGER_QUERY_GRPC_PORT:-16685}"
JAEGER_MAX_TRACES="${CAESAR_JAEGER_MAX_TRACES:-100000}"
JAEGER_HOME="$TOOLS_DIR/jaeger-$JAEGER_VERSION"
JAEGER_BIN="$JAEGER_HOME/jaeger"
JAEGER_DIR="$RUN_DIR/jaeger"
JAEGER_CONFIG="$JAEGER_DIR/config.yaml"
JAEGER_PID="$PID_DIR/jaeger.pid"
JAEGER_LOG="$LOG_DIR/jaeger.log"
JAEGER_URL="http://127.0.0.1:$JAEGER_UI_PORT"
GO="${CAESAR_GO:-$(command -v go || echo /usr/local/go/bin/go)}"

# ---------------------------------------------------------------- install
# installed -> true if the cached binary is the wanted version. The directory is named after
# the version; with Go at hand the binary's own build record is checked too (a half-copied
# or hand-placed file is not taken for it).
installed() {
  [[ -x "$JAEGER_BIN" ]] || return 1
  [[ -x "$GO" ]] || return 0
  "$GO" version -m "$JAEGER_BIN" 2>/dev/null |
    grep -qE "^[[:space:]]+(mod|dep)[[:space:]]+${JAEGER_MODULE}[[:space:]]+${JAEGER_VERSION}([[:space:]]|$)"
}

cmd_install() {
  if installed; then
    log "Jaeger $JAEGER_VERSION already built: $JAEGER_BIN"
    return 0
  fi
  [[ -x "$GO" ]] || die "Go not found (looked for go on PATH and /usr/local/go/bin/go; set CAESAR_GO)"
  local scratch t0=$SECONDS build_log="$LOG_DIR/jaeger-build.log"
  mkdir -p "$JAEGER_HOME" "$LOG_DIR"
  # One build at a time (make test and make up may both ask); the second finds it done.
  # Under the lock, scratch dirs left by an interrupted build are nobody's: delete them.
  exec 9>"$TOOLS_DIR/jaeger-build.lock"
  flock 9
  if installed; then
    exec 9>&-
    log "Jaeger $JAEGER_VERSION was built meanwhile: $JAEGER_BIN"
    return 0
  fi
  rm -rf "$TOOLS_DIR"/jaeger-build.*/
  scratch="$(mktemp -d "$TOOLS_DIR/jaeger-build.XXXXXX")"
  # The Go environment of this build only: modules and cache in the scratch dir, module
  # files writable (so they can be deleted), no VCS stamping, the installed Go
  # (never a toolchain download), no cgo (a static binary, as Jaeger's releases are).
  local goenv=(
    env GOPATH="$scratch/go" GOMODCACHE="$scratch/go/pkg/mod" GOCACHE="$scratch/cache"
    GOTMPDIR="$scratch" GOFLAGS="-modcacherw -buildvcs=false" GOTOOLCHAIN=local
    CGO_ENABLED=0 GOENV=off GOWORK=off
  )
  log "building Jaeger $JAEGER_VERSION from the Go module proxy (about 5 minutes; $("$GO" version); log: $build_log)"
  if ! (
    cd "$scratch"
    "${goenv[@]}" "$GO" mod init caesar-rest/jaeger-build
    "${goenv[@]}" "$GO" get -tool "$JAEGER_MODULE/cmd/jaeger@$JAEGER_VERSION"
    nice -n 10 "${goenv[@]}" "$GO" build -trimpath -ldflags="-s -w" -o "$JAEGER_BIN.tmp" \
      "$JAEGER_MODULE/cmd/jaeger"
  ) >"$build_log" 2>&1; then
    tail -n 30 "$build_log" >&2
    rm -rf "$scratch" "$JAEGER_BIN.tmp"
    die "building Jaeger $JAEGER_VERSION failed (log: $build_log)"
  fi
  mv -f "$JAEGER_BIN.tmp" "$JAEGER_BIN"
  rm -rf "$scratch"
  exec 9>&- # unlocked; a Jaeger started next must not inherit the lock
  installed || die "the binary built is not Jaeger $JAEGER_VERSION: $JAEGER_BIN"
  log "Jaeger $JAEGER_VERSION built in $((SECONDS - t0))s: $JAEGER_BIN"
}

# ---------------------------------------------------------------- run
# The collector configuration (component keys checked against the v1.76.0 sources).
cmd_config() {
  cat <<EOF
# Generated by scripts/jaeger.sh; rewritten at every start.
# Only what caesar-rest uses, all on 127.0.0.1: OTLP/HTTP in, memory store, query API/UI.
service:
  extensions: [jaeger_storage, jaeger_query]
  pipelines:
    traces:
      receivers: [otlp]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none   # no Prometheus endpoint on :8888
    logs:
      level: info

extensions:
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: $JAEGER_MAX_TRACES
  jaeger_query:
    storage:
      traces: memstore
    enable_tracing: false   # on, it would export its own spans to localhost:4317
    http:
      endpoint: 127.0.0.1:$JAEGER_UI_PORT
    grpc:
      endpoint: 127.0.0.1:$JAEGER_QUERY_GRPC_PORT

receivers:
  otlp:
    protocols:   # http only: a protocol left out is not started
      http:
        endpoint: 127.0.0.1:$JAEGER_OTLP_PORT

exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
EOF
}

write_config() {
  mkdir -p "$JAEGER_DIR" "$LOG_DIR" "$PID_DIR"
  chmod 0700 "$JAEGER_DIR"
  cmd_config >"$JAEGER_CONFIG"
}

answers() { curl -fsS -o /dev/null --max-time 2 "$JAEGER_URL/api/services" 2>/dev/null; }
# serving: the query API answers and the OTLP receiver takes connections.
serving() { answers && port_open "$JAEGER_OTLP_PORT"; }

cmd_start() {
  if pid_alive "$JAEGER_PID" jaeger; then
    log "Jaeger already running (pid $(<"$JAEGER_PID")): $JAEGER_URL"
    record jaeger
    return 0
  fi
  if port_open "$JAEGER_UI_PORT"; then
    answers && port_open "$JAEGER_OTLP_PORT" &&
      { log "reusing the Jaeger already answering on $JAEGER_URL"; return 0; }
    die "port $JAEGER_UI_PORT is taken by something else"
  fi
  local port
  for port in "$JAEGER_OTLP_PORT" "$JAEGER_QUERY_GRPC_PORT"; do
    port_open "$port" && die "port $port is taken by something else"
  done
  cmd_install
  write_config
  log "starting Jaeger $JAEGER_VERSION: OTLP/HTTP 127.0.0.1:$JAEGER_OTLP_PORT, UI $JAEGER_URL"
  # Without the caller's OTEL_* variables: they are meant for our services, not for
  # Jaeger's own SDK parts.
  local v
  (
    for v in $(compgen -e); do [[ "$v" == OTEL_* ]] && unset "$v"; done
    cd "$JAEGER_DIR" && spawn "$JAEGER_PID" "$JAEGER_LOG" "$JAEGER_BIN" --config "$JAEGER_CONFIG"
  )
  await_up "$JAEGER_PID" jaeger "$JAEGER_LOG" "${CAESAR_JAEGER_START_TIMEOUT:-60}" serving ||
    die "Jaeger did not start"
  record jaeger
}

cmd_stop() {
  release jaeger Jaeger || return 0
  kill_pidfile "$JAEGER_PID" jaeger 15
}

cmd_status() {
  if pid_alive "$JAEGER_PID" jaeger; then
    echo "jaeger:     running  pid=$(<"$JAEGER_PID") otlp=http://127.0.0.1:$JAEGER_OTLP_PORT ui=$JAEGER_URL"
  elif answers; then
    echo "jaeger:     running  ui=$JAEGER_URL (started elsewhere)"
  else
    echo "jaeger:     stopped"
  fi
}

cmd_installed() { installed && echo "$JAEGER_BIN"; }

cmd_env() { echo "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:$JAEGER_OTLP_PORT"; }

cmd_url() { echo "$JAEGER_URL"; }


usage="usage: $0 install|installed|start|stop|status|env|url|config [--tag TAG]"
TAG="${CAESAR_START_TAG:-manual}"
STOP_TAG=""
cmds=()
while (($#)); do
  case "$1" in
    --tag) TAG="$2" STOP_TAG="$2"; shift 2 ;;
    install | installed | start | stop | status | env | url | config) cmds+=("$1"); shift ;;
    *) die "$usage" ;;
  esac
done
((${#cmds[@]})) || die "$usage"
for c in "${cmds[@]}"; do "cmd_$c"; done
