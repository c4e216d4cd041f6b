#!/usr/bin/env bash
# Run the caesar-rest services as background processes from the project venv.
#
#   scripts/services.sh start|stop|status|restart [api scheduler runner monitor accounting]
#   CAESAR_REPLICAS=2 scripts/services.sh start      # two of every service
#
# Each service gets CAESAR_HTTP_PORT (its health port), the infra URLs with its own
# broker and database user, and data dirs under $RUN_DIR; any other CAESAR_* the
# caller exported is passed through.
# A replica is named <service>@<n> (api@2): its port is the service's plus 10*(n-1)
# (the second api listens on 8090), its pid file and log are its own.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PY="$REPO/.venv/bin/python"

# instance_port INSTANCE -> the HTTP port of a service or replica (api, api@2)
instance_port() {
  local name="${1%@*}" n=1
  [[ "$1" == *@* ]] && n="${1#*@}"
  printf '%s' "$(($(service_port "$name") + 10 * (n - 1)))"
}

start_one() {
  local instance="$1" name="${1%@*}" port pidfile="$PID_DIR/$1.pid" log="$LOG_DIR/$1.log"
  port="$(instance_port "$instance")"
  if pid_alive "$pidfile" "caesar_$name"; then
    log "$instance already running (pid $(<"$pidfile"))"
    return 0
  fi
  port_open "$port" && die "port $port for $instance is taken by something else"
  log "starting $instance on 127.0.0.1:$port (log: $log)"
  (
    cd "$REPO"
    # Its own broker and database user (least privilege, see docs/security.md).
    CAESAR_AMQP_URL="$(amqp_url "$name")" CAESAR_MONGO_URL="$(mongo_url "$name")"
    export CAESAR_AMQP_URL CAESAR_MONGO_URL CAESAR_HTTP_HOST=127.0.0.1 CAESAR_HTTP_PORT="$port"
    export CAESAR_DATA_ROOT="${CAESAR_DATA_ROOT:-$RUN_DIR/data}"
    export CAESAR_JOBS_ROOT="${CAESAR_JOBS_ROOT:-$RUN_DIR/jobs}"
    # The api asks accounting for usage figures over its internal HTTP API.
    if [[ "$name" == api ]]; then
      export CAESAR_ACCOUNTING_URL="${CAESAR_ACCOUNTING_URL:-http://127.0.0.1:$CAESAR_ACCOUNTING_PORT}"
    fi
    spawn "$pidfile" "$log" "$PY" -m "caesar_$name"
  )
}

# Wait for /readyz after all were launched, so the services boot in parallel.
wait_ready() {
  local name="$1" port
  port="$(instance_port "$name")"
  if ! wait_http "http://127.0.0.1:$port/readyz" 60 "$PID_DIR/$name.pid"; then
    log "$name not ready; last lines of $LOG_DIR/$name.log:"
    tail -n 40 "$LOG_DIR/$name.log" >&2 || true
    return 1
  fi
  log "$name ready on http://127.0.0.1:$port"
}

cmd_start() {
  local name rc=0
  [[ -x "$PY" ]] || die "no project venv; run: scripts/infra.sh install"
  mkdir -p "$LOG_DIR" "$PID_DIR" "${CAESAR_DATA_ROOT:-$RUN_DIR/data}" "${CAESAR_JOBS_ROOT:-$RUN_DIR/jobs}"
  for name in "$@"; do start_one "$name"; done
  for name in "$@"; do wait_ready "$name" || rc=1; done
  return "$rc"
}

cmd_stop() {
  local name i
  # Reverse order: the api stops taking requests before its back-ends go.
  for ((i = $# ; i > 0 ; i--)); do
    name="${!i}"
    kill_pidfile "$PID_DIR/$name.pid" "caesar_${name%@*}" 15
  done
}

cmd_status() {
  local name port state
  for name in "$@"; do
    port="$(instance_port "$name")"
    if pid_alive "$PID_DIR/$name.pid" "caesar_${name%@*}"; then
      state="running pid=$(<"$PID_DIR/$name.pid")"
      if curl -fsS -o /dev/null --max-time 2 "http://127.0.0.1:$port/readyz"; then
        state+=" ready"
      else
        state+=" not-ready"
      fi
    else
      state="stopped"
    fi
    printf '%-11s %-30s http://127.0.0.1:%s\n' "$name:" "$state" "$port"
  done
}

(($#)) || die "usage: $0 start|stop|status|restart [${SERVICES[*]}]"
cmd="$1"
shift
names=("$@")
if ((${#names[@]} == 0)); then
  names=("${SERVICES[@]}")
  # With no names, stop and status also cover replicas started earlier (api@2 ...).
  if [[ "$cmd" != start ]]; then
    for pidfile in "$PID_DIR"/*@*.pid; do
      [[ -e "$pidfile" ]] && names+=("$(basename "$pidfile" .pid)")
    done
  fi
fi
for n in "${names[@]}"; do
  [[ " ${SERVICES[*]} " == *" ${n%@*} "* ]] || die "unknown service '$n' (known: ${SERVICES[*]})"
done
# CAESAR_REPLICAS=N: every named service N times (api, api@2, ...).
replicas="${CAESAR_REPLICAS:-1}"
[[ "$replicas" =~ ^[1-9]$ ]] || die "CAESAR_REPLICAS must be 1-9"
if ((replicas > 1)); then
  expanded=()
  for n in "${names[@]}"; do
    expanded+=("$n")
    for ((r = 2; r <= replicas; r++)); do expanded+=("${n%@*}@$r"); done
  done
  names=("${expanded[@]}")
fi
case "$cmd" in
  start | stop | status) "cmd_$cmd" "${names[@]}" ;;
  restart) cmd_stop "${names[@]}" && cmd_start "${names[@]}" ;;
  *) die "usage: $0 start|stop|status|restart [${SERVICES[*]}]" ;;
esac
