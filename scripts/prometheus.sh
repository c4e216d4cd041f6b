#!/usr/bin/env bash
# A local Prometheus (Debian's package) for the dashboards and alert rules: scrapes the
# five services on their HTTP ports and RabbitMQ's rabbitmq_prometheus plugin, and loads
# deploy/prometheus/alerts.yml, so the queries of deploy/grafana/dashboards/*.json can be
# tried against the local stack (http://127.0.0.1:9091/graph).
#
#   scripts/prometheus.sh install|start|stop|status [--tag TAG]
#
# install: apt-get install prometheus (it brings promtool) if missing. Without systemd
#   the package's postinst may start the system server (0.0.0.0:9090, user prometheus);
#   we just caused that, so it is stopped again, as scripts/infra.sh does for RabbitMQ.
# start: our own server on 127.0.0.1:$CAESAR_PROMETHEUS_PORT (default 9091, not the
#   system's 9090), config written to $RUN_DIR/prometheus/prometheus.yml from the ports
#   in scripts/lib.sh, data in $RUN_DIR/prometheus/data, pid in $RUN_DIR/pids. Records
#   itself in $RUN_DIR/started-by-<tag> like scripts/infra.sh; `stop --tag T` stops it
#   only if no other tag still records it.
# The e2e dashboard test (tests/e2e/test_dashboards.py) needs only `install`: it starts
# a Prometheus of its own for its isolated stack.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

PROM_PORT="${CAESAR_PROMETHEUS_PORT:-9091}"
PROM_DIR="$RUN_DIR/prometheus"
PROM_CONFIG="$PROM_DIR/prometheus.yml"
PROM_PID="$PID_DIR/prometheus.pid"
PROM_LOG="$LOG_DIR/prometheus.log"
PROM_URL="http://127.0.0.1:$PROM_PORT"
ALERT_RULES="$REPO/deploy/prometheus/alerts.yml"

cmd_install() {
  if command -v prometheus >/dev/null && command -v promtool >/dev/null; then
    log "prometheus $(prometheus --version 2>&1 | sed -n '1s/^prometheus, version \([^ ]*\).*/\1/p') already installed"
    return 0
  fi
  local system_was_up=0
  port_open 9090 && system_was_up=1
  log "apt-get install prometheus"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  # No node exporter (a Recommends): nothing here scrapes it.
  apt-get install -y -q --no-install-recommends prometheus
  # The package's own server, if its postinst started one, binds 0.0.0.0:9090: stop it
  # (only if it was not running before we installed).
  if ((!system_was_up)) && [[ -x /etc/init.d/prometheus ]] && pgrep -u prometheus -x prometheus >/dev/null; then
    log "stopping the system Prometheus started by the package install"
    /etc/init.d/prometheus stop >/dev/null 2>&1 || true
  fi
  command -v promtool >/dev/null || die "promtool missing after installing prometheus"
}

# The scrape config of the local stack, with the job names the dashboards and alert rules
# use: every service (ports from lib.sh) and the broker's Prometheus plugin, whose
# /metrics/detailed endpoint gives per-queue series (/metrics sums over all queues).
write_config() {
  mkdir -p "$PROM_DIR/data" "$LOG_DIR" "$PID_DIR"
  {
    printf '%s\n' \
      "# Written by scripts/prometheus.sh start; edits are overwritten." \
      "global:" \
      "  scrape_interval: 5s" \
      "  evaluation_interval: 5s" \
      "rule_files:" \
      "  - $ALERT_RULES" \
      "scrape_configs:"
    local s
    for s in "${SERVICES[@]}"; do
      printf '%s\n' \
        "  - job_name: caesar-$s" \
        "    static_configs:" \
        "      - targets: ['127.0.0.1:$(service_port "$s")']" \
        "        labels: {service: $s}"
    done
    printf '%s\n' \
      "  - job_name: rabbitmq" \
      "    metrics_path: /metrics/detailed" \
      "    params: {family: [queue_coarse_metrics, queue_consumer_count]}" \
      "    static_configs:" \
      "      - targets: ['127.0.0.1:$CAESAR_RABBITMQ_PROMETHEUS_PORT']"
  } >"$PROM_CONFIG.tmp"
  mv "$PROM_CONFIG.tmp" "$PROM_CONFIG"
}

cmd_start() {
  if pid_alive "$PROM_PID" prometheus; then
    log "Prometheus already running (pid $(<"$PROM_PID"))"
    record prometheus
    return 0
  fi
  port_open "$PROM_PORT" && die "port $PROM_PORT is taken by something else (CAESAR_PROMETHEUS_PORT)"
  command -v prometheus >/dev/null || die "prometheus missing; run: scripts/prometheus.sh install"
  write_config
  promtool check config "$PROM_CONFIG" >/dev/null || die "invalid config $PROM_CONFIG"
  log "starting Prometheus on $PROM_URL (config $PROM_CONFIG)"
  # The Debian binary looks for its web assets in /usr/share/prometheus; consoles too.
  (cd "$PROM_DIR" && spawn "$PROM_PID" "$PROM_LOG" prometheus \
    --config.file="$PROM_CONFIG" --storage.tsdb.path="$PROM_DIR/data" \
    --storage.tsdb.retention.time=7d --web.listen-address="127.0.0.1:$PROM_PORT")
  if ! wait_http "$PROM_URL/-/ready" 60 "$PROM_PID"; then
    tail -n 30 "$PROM_LOG" >&2 || true
    kill_pidfile "$PROM_PID" prometheus 10
    die "Prometheus did not start"
  fi
  record prometheus
  echo "prometheus:  $PROM_URL"
}

cmd_stop() {
  release prometheus Prometheus || return 0
  kill_pidfile "$PROM_PID" prometheus 15
}

cmd_status() {
  if pid_alive "$PROM_PID" prometheus; then
    echo "prometheus: running  pid=$(<"$PROM_PID") url=$PROM_URL"
  else
    echo "prometheus: stopped"
  fi
}


dispatch "usage: $0 install|start|stop|status [--tag TAG]" "install start stop status" "$@"
