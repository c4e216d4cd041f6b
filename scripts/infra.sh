#!/usr/bin/env bash
# Local infrastructure for caesar-rest: a private RabbitMQ node and a
# MongoDB-wire server (secantusdb), both on 127.0.0.1 with data under $RUN_DIR.
#
#   scripts/infra.sh install|start|stop|status|ctl [args...] [--tag TAG]
#
# start records what it started (or found already running here) in
# $RUN_DIR/started-by-<tag> (tag: --tag or $CAESAR_START_TAG, default
# "manual"). `stop --tag T` stops what T recorded, except what another tag
# still records (e.g. `make up` infra outlives a `make test` run); plain `stop`
# stops everything of ours. `ctl ARGS` runs rabbitmqctl against our node.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

SECANTUS_VENV="$TOOLS_DIR/secantus"
MONGO_PID="$PID_DIR/mongo.pid"
# Call the real RabbitMQ scripts, not Debian's /usr/sbin wrappers: those `su` to
# the rabbitmq user (data dirs would need chown, and every parent directory of
# the checkout would need to be traversable by that user) and switch HOME, i.e.
# the Erlang cookie. Run directly, the node runs as us with HOME=$RABBIT_DIR.
if [[ -x /usr/lib/rabbitmq/bin/rabbitmqctl ]]; then
  RMQ_BIN=/usr/lib/rabbitmq/bin
else
  RMQ_BIN="$(dirname "$(command -v rabbitmqctl 2>/dev/null || echo /usr/sbin/rabbitmqctl)")"
fi

# uv may be installed as a pip package whose bin dir is not on PATH.
uv_cmd() {
  if command -v uv >/dev/null; then uv "$@"; else python3 -m uv "$@"; fi
}

# ---------------------------------------------------------------- install
install_apt_packages() {
  local missing=()
  [[ -x "$RMQ_BIN/rabbitmq-server" ]] || missing+=(rabbitmq-server)
  command -v curl >/dev/null || missing+=(curl)
  ((${#missing[@]})) || return 0
  log "apt-get install ${missing[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q
  apt-get install -y -q --no-install-recommends "${missing[@]}"
  RMQ_BIN=/usr/lib/rabbitmq/bin
  # Without systemd the package's postinst may have started the default node
  # (rabbit@<host>, 0.0.0.0:5672). We just caused that, so stop it; it would
  # hold our AMQP port. Via the Debian wrapper so its own cookie is used.
  if [[ " ${missing[*]} " == *" rabbitmq-server "* ]] &&
    rabbitmqctl -q -n "rabbit@$(hostname -s)" status >/dev/null 2>&1; then
    log "stopping the system RabbitMQ node started by the package install"
    rabbitmqctl -q -n "rabbit@$(hostname -s)" stop || true
  fi
}

install_uv() {
  uv_cmd --version >/dev/null 2>&1 && return 0
  log "installing uv with pip"
  python3 -m pip --version >/dev/null 2>&1 || apt-get install -y -q python3-pip
  # Debian's python is "externally managed" (PEP 668); uv is a standalone
  # binary, so installing it next to the system packages is harmless.
  python3 -m pip install -q uv || python3 -m pip install -q --break-system-packages uv
}

install_secantus() {
  # Own venv: secantusdb pins (numpy etc.) differ from the project's.
  if [[ -x "$SECANTUS_VENV/bin/secantusd-py" ]]; then
    log "secantusdb already installed in $SECANTUS_VENV"
    return 0
  fi
  log "installing secantusdb into $SECANTUS_VENV"
  mkdir -p "$TOOLS_DIR"
  uv_cmd venv -q --clear -p 3.11 "$SECANTUS_VENV"
  uv_cmd pip install -q --python "$SECANTUS_VENV/bin/python" secantusdb
}

cmd_install() {
  install_apt_packages
  install_uv
  install_secantus
  sync_venv
  # A root runner runs each job as an unprivileged job user (docs/security.md): the job
  # group, the acl package and traverse-only grants to the interpreter (root only).
  if ((EUID == 0)); then "$REPO/scripts/jobuser.sh" install; fi
}

sync_venv() {
  local args=(sync -q) broken=() p
  [[ -f "$REPO/uv.lock" ]] && args+=(--frozen)
  log "syncing the project venv ($REPO/.venv)"
  (cd "$REPO" && uv_cmd "${args[@]}")
  # uv caches the editable build of each workspace member; one built while its
  # package dir did not exist yet has no .pth, and stays broken until rebuilt.
  mapfile -t broken < <(cd "$REPO" && .venv/bin/python - <<'EOF'
import glob, importlib.util, os
for d in glob.glob("libs/*/src/caesar_*") + glob.glob("services/*/src/caesar_*"):
    name = os.path.basename(d)
    if os.path.exists(f"{d}/__init__.py") and importlib.util.find_spec(name) is None:
        print(name.replace("_", "-"))
EOF
  )
  ((${#broken[@]})) || return 0
  log "rebuilding stale editable installs: ${broken[*]}"
  for p in "${broken[@]}"; do args+=(--reinstall-package "$p"); done
  (cd "$REPO" && uv_cmd "${args[@]}")
}

# ---------------------------------------------------------------- rabbitmq
# Environment for our node and for the CLI talking to it. Exported only inside
# the subshells that call it.
rabbit_env() {
  export HOME="$RABBIT_DIR" # cookie: $RABBIT_DIR/.erlang.cookie, for server and CLI
  export RABBITMQ_NODENAME="$RABBIT_NODE"
  export RABBITMQ_NODE_IP_ADDRESS=127.0.0.1
  export RABBITMQ_NODE_PORT="$CAESAR_RABBITMQ_PORT"
  export RABBITMQ_DIST_PORT="$CAESAR_RABBITMQ_DIST_PORT"
  export ERL_EPMD_ADDRESS=127.0.0.1 # only matters if our node starts epmd
  export RABBITMQ_MNESIA_BASE="$RABBIT_DIR/mnesia"
  export RABBITMQ_LOG_BASE="$RABBIT_DIR/log"
  export RABBITMQ_PID_FILE="$RABBIT_DIR/rabbitmq.pid"
  export RABBITMQ_CONFIG_FILE="$RABBIT_DIR/rabbitmq.conf"
  # Keep /etc/rabbitmq (env file, plugins, advanced.config) out of our node.
  export RABBITMQ_CONF_ENV_FILE="$RABBIT_DIR/rabbitmq-env.conf"
  export RABBITMQ_ENABLED_PLUGINS_FILE="$RABBIT_DIR/enabled_plugins"
  export RABBITMQ_ADVANCED_CONFIG_FILE="$RABBIT_DIR/advanced.config"
  export ERL_CRASH_DUMP="$RABBIT_DIR/log/erl_crash.dump"
  # Erlang distribution (node and CLI) listens on all interfaces by default.
  export RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
  export RABBITMQ_CTL_ERL_ARGS="-kernel inet_dist_use_interface {127,0,0,1}"
}

rmqctl() { (rabbit_env && "$RMQ_BIN/rabbitmqctl" -n "$RABBIT_NODE" "$@"); }

rabbit_ours() { pid_alive "$RABBIT_DIR/rabbitmq.pid" beam; }
rabbit_answers() {
  [[ -x "$RMQ_BIN/rabbitmqctl" && -s "$RABBIT_DIR/.erlang.cookie" ]] &&
    rmqctl -q status >/dev/null 2>&1
}

rabbit_prepare() {
  mkdir -p "$RABBIT_DIR"/{mnesia,log} "$LOG_DIR"
  printf '%s\n' \
    "listeners.tcp.default = 127.0.0.1:$CAESAR_RABBITMQ_PORT" \
    "loopback_users = none" \
    "prometheus.tcp.ip = 127.0.0.1" \
    "prometheus.tcp.port = $CAESAR_RABBITMQ_PROMETHEUS_PORT" >"$RABBIT_DIR/rabbitmq.conf"
  # Queue depths and rates for Prometheus (http://127.0.0.1:15692/metrics), as the
  # operators' dashboards read them; no management UI.
  echo '[rabbitmq_prometheus].' >"$RABBIT_DIR/enabled_plugins"
  : >"$RABBIT_DIR/rabbitmq-env.conf"
  echo '[].' >"$RABBIT_DIR/advanced.config"
  local cookie="$RABBIT_DIR/.erlang.cookie"
  if [[ ! -s "$cookie" ]]; then
    # Reuse the system cookie when readable so the Debian wrapper
    # (`rabbitmqctl -n caesar@localhost ...` as root) can talk to our node too.
    if [[ -r /var/lib/rabbitmq/.erlang.cookie ]]; then
      cat /var/lib/rabbitmq/.erlang.cookie >"$cookie"
    else
      head -c 32 /dev/urandom | od -An -tx1 | tr -d ' \n' >"$cookie"
    fi
  fi
  chmod 400 "$cookie" # Erlang refuses a cookie readable by others
}

start_rabbit() {
  rabbit_prepare # config and cookie, also needed to talk to a running node
  if rabbit_ours && rabbit_answers; then
    log "RabbitMQ $RABBIT_NODE already running"
    rabbit_users
    record rabbitmq
    return 0
  fi
  if port_open "$CAESAR_RABBITMQ_PORT"; then
    # Our node, started from another checkout (same cookie source): reuse it.
    rabbit_answers && { log "reusing RabbitMQ $RABBIT_NODE started elsewhere"; return 0; }
    die "port $CAESAR_RABBITMQ_PORT is taken by something else (system rabbit@$(hostname -s)? stop it: rabbitmqctl stop)"
  fi
  # The node spawns epmd if none runs; remember that so stop can end it too.
  port_open 4369 || touch "$RABBIT_DIR/we-started-epmd"
  log "starting RabbitMQ $RABBIT_NODE on 127.0.0.1:$CAESAR_RABBITMQ_PORT"
  # cd: the node writes nothing in cwd, but don't pin the caller's directory.
  (rabbit_env && cd "$RABBIT_DIR" && "$RMQ_BIN/rabbitmq-server" -detached) \
    >>"$LOG_DIR/rabbitmq-startup.log" 2>&1
  # `wait` (not await_startup) also waits for the pid file to appear.
  if ! rmqctl -q wait --timeout 90 "$RABBIT_DIR/rabbitmq.pid" >/dev/null; then
    tail -n 30 "$LOG_DIR/rabbitmq-startup.log" "$RABBIT_DIR/log/"*.log >&2 || true
    die "RabbitMQ did not start"
  fi
  rabbit_users
  record rabbitmq
}

# The users (one per service, an administrator, the event subscriber), vhost /, its
# exchanges and every permission, from the secrets (scripts/credentials.py); and no
# guest. Run at every start: a rotated secret takes effect here.
rabbit_users() {
  local defs="$RABBIT_DIR/definitions.json"
  python3 "$REPO/scripts/credentials.py" broker-definitions --env "$SECRETS_FILE" --out "$defs"
  chmod 600 "$defs"
  rmqctl -q import_definitions "$defs" >/dev/null
  local users
  # Into a variable first: `grep -q` in a pipe may exit before rabbitmqctl has written
  # everything, which then dies of SIGPIPE and (pipefail) fails the test.
  users="$(rmqctl -q list_users --no-table-headers)"
  if grep -q '^guest\b' <<<"$users"; then
    log "deleting RabbitMQ's default guest user"
    rmqctl -q delete_user guest >/dev/null
  fi
}

stop_rabbit() {
  if ! rabbit_ours; then
    rm -f "$RABBIT_DIR/rabbitmq.pid"
    return 0
  fi
  log "stopping RabbitMQ $RABBIT_NODE"
  # With the pid file, `stop` returns only once the VM has exited. If the CLI
  # can't reach the node, SIGTERM also makes RabbitMQ shut down cleanly.
  rmqctl -q stop "$RABBIT_DIR/rabbitmq.pid" >/dev/null 2>&1 ||
    kill_pidfile "$RABBIT_DIR/rabbitmq.pid" beam 60
  # epmd is shared by all Erlang nodes: end it only if our node started it and
  # no node is registered any more.
  if [[ -f "$RABBIT_DIR/we-started-epmd" ]] && ! epmd -names 2>/dev/null | grep -q '^name '; then
    epmd -kill >/dev/null 2>&1 || true
  fi
  rm -f "$RABBIT_DIR/we-started-epmd"
}

# ---------------------------------------------------------------- mongo
# The server runs with --auth: SCRAM users from the secrets, each service readWrite on
# its own database only (caesar_common.access). Users are created once on a server
# started without auth (this mark records it), then kept in step at every start.
MONGO_USERS_MARK="$RUN_DIR/mongo/.caesar-users-created"

# mongo_ping [ROLE] -> true if the server answers ROLE's ping (default: admin)
mongo_ping() {
  "$SECANTUS_VENV/bin/python" - "$(mongo_url "${1:-admin}")" <<'EOF' >/dev/null 2>&1
import sys
from pymongo import MongoClient
c = MongoClient(sys.argv[1], serverSelectionTimeoutMS=2000)
c.admin.command("ping")  # with credentials, a wrong password fails here (code 18)
EOF
}

# mongo_users ROLE: create (or update) the administrator and the service users as ROLE
# (none: before any user exists); a rotated password or a changed role takes effect.
mongo_users() {
  PYTHONPATH="$REPO/libs/common/src" "$SECANTUS_VENV/bin/python" - "$(mongo_url "$1")" "$SECRETS_FILE" <<'EOF'
import sys
from pymongo import MongoClient
from caesar_common import access

url, secrets_file = sys.argv[1], sys.argv[2]
values = access.parse_env_file(open(secrets_file).read())
wanted = {access.database_user(access.ADMIN): (access.database_secret(access.ADMIN), access.ADMIN_DATABASE_ROLES)}
for service in access.SERVICES:
    wanted[access.database_user(service)] = (access.database_secret(service), access.database_roles(service))
client = MongoClient(url, serverSelectionTimeoutMS=5000)
existing = {u["user"] for u in client.admin.command("usersInfo")["users"]}
for user, (secret, roles) in wanted.items():
    command = "updateUser" if user in existing else "createUser"
    client.admin.command(command, user, pwd=values[secret], roles=roles)
EOF
}

# spawn_mongo [--auth]: start the server and wait until it answers
spawn_mongo() {
  # cwd $RUN_DIR/mongo: no secantusd.toml gets auto-discovered from the caller.
  # --sync-on-commit: an acknowledged write survives a crash of the server (measured:
  # 0.53 vs 0.36 ms per insert), which the never-lose-a-job promise relies on.
  (cd "$RUN_DIR/mongo" && spawn "$MONGO_PID" "$LOG_DIR/mongo.log" \
    "$SECANTUS_VENV/bin/secantusd-py" --host 127.0.0.1 --port "$CAESAR_MONGO_PORT" \
    --storage-path "$RUN_DIR/mongo" --sync-on-commit "$@")
  # ping needs no user, with or without --auth
  await_up "$MONGO_PID" secantusd "$LOG_DIR/mongo.log" 60 mongo_ping none || die "secantusdb did not start"
}

start_mongo() {
  if pid_alive "$MONGO_PID" secantusd; then
    log "secantusdb already running (pid $(<"$MONGO_PID"))"
    mongo_users admin
    record mongo
    return 0
  fi
  [[ -x "$SECANTUS_VENV/bin/secantusd-py" ]] || die "secantusdb missing; run: scripts/infra.sh install"
  if port_open "$CAESAR_MONGO_PORT"; then
    # A server from another checkout sharing these credentials is as good: reuse it.
    mongo_ping && { log "reusing the MongoDB server already on port $CAESAR_MONGO_PORT"; return 0; }
    die "port $CAESAR_MONGO_PORT is taken by something else (or by a server with other credentials)"
  fi
  mkdir -p "$RUN_DIR/mongo" "$LOG_DIR" "$PID_DIR"
  if [[ ! -f "$MONGO_USERS_MARK" ]]; then
    log "creating the database users (secantusdb without auth, once)"
    spawn_mongo
    mongo_users none
    kill_pidfile "$MONGO_PID" secantusd 15
    touch "$MONGO_USERS_MARK"
  fi
  log "starting secantusdb with authentication on 127.0.0.1:$CAESAR_MONGO_PORT"
  spawn_mongo --auth
  if ! mongo_ping admin; then
    # The secrets were rotated (the administrator's password too): set every user's
    # password again on a server without auth, then come back with it.
    log "the database administrator's password changed: setting the users' passwords again"
    kill_pidfile "$MONGO_PID" secantusd 15
    spawn_mongo
    mongo_users none
    kill_pidfile "$MONGO_PID" secantusd 15
    spawn_mongo --auth
  fi
  mongo_users admin
  record mongo
}

stop_mongo() { kill_pidfile "$MONGO_PID" secantusd 15; }

# ---------------------------------------------------------------- commands
# The run directory is traversable (jobs reach their attempt directories under it) but
# not listable, and what the servers keep there is theirs alone: no job user or other
# local user reads the database files, the broker's cookie, the logs or the secrets.
private_run_dir() {
  local d
  chmod 0711 "$RUN_DIR"
  for d in mongo rabbitmq logs pids keycloak; do
    mkdir -p "$RUN_DIR/$d"
    chmod 0700 "$RUN_DIR/$d"
  done
}


# claimed_elsewhere WHAT -> true if a tag other than $STOP_TAG records WHAT
claimed_elsewhere() {
  local f
  for f in "$RUN_DIR"/started-by-*; do
    [[ -f "$f" && "$f" != "$RUN_DIR/started-by-$STOP_TAG" ]] || continue
    grep -qx "$1" "$f" && { log "$1 stays up: still used by ${f##*/started-by-}"; return 0; }
  done
  return 1
}

cmd_start() {
  mkdir -p "$RUN_DIR"
  private_run_dir
  start_rabbit
  start_mongo
  print_urls
}

cmd_stop() {
  local files=("$RUN_DIR/started-by-$STOP_TAG") what c
  if [[ -n "$STOP_TAG" ]]; then
    [[ -f "${files[0]}" ]] || { log "nothing was started with tag '$STOP_TAG'"; return 0; }
    what=""
    for c in $(<"${files[0]}"); do claimed_elsewhere "$c" || what+=" $c"; done
  else
    files=("$RUN_DIR"/started-by-*)
    what="mongo rabbitmq"
  fi
  if [[ "$what" == *mongo* ]]; then stop_mongo; fi
  if [[ "$what" == *rabbitmq* ]]; then stop_rabbit; fi
  rm -f "${files[@]}"
}

cmd_status() {
  if rabbit_answers; then
    echo "rabbitmq:   running  node=$RABBIT_NODE amqp=127.0.0.1:$CAESAR_RABBITMQ_PORT$(rabbit_ours || echo ' (started elsewhere)')"
  else
    echo "rabbitmq:   stopped"
  fi
  if pid_alive "$MONGO_PID" secantusd; then
    echo "secantusdb: running  pid=$(<"$MONGO_PID") port=127.0.0.1:$CAESAR_MONGO_PORT"
  elif port_open "$CAESAR_MONGO_PORT" && mongo_ping admin; then
    echo "secantusdb: running  port=127.0.0.1:$CAESAR_MONGO_PORT (started elsewhere)"
  else
    echo "secantusdb: stopped"
  fi
  local f
  for f in "$RUN_DIR"/started-by-*; do
    [[ -f "$f" ]] && echo "${f##*/}: $(tr '\n' ' ' <"$f")"
  done
  print_urls
}

print_urls() {
  # The URLs hold passwords: say where they are, don't print them.
  echo "broker:      amqp://127.0.0.1:$CAESAR_RABBITMQ_PORT/ (users caesar-admin, caesar-<service>)"
  echo "database:    mongodb://127.0.0.1:$CAESAR_MONGO_PORT/ (users caesar-admin, caesar-<service>)"
  echo "credentials: $SECRETS_FILE (readable by its owner only)"
}

TAG="${CAESAR_START_TAG:-manual}"
STOP_TAG=""
cmds=()
while (($#)); do
  case "$1" in
    --tag) TAG="$2" STOP_TAG="$2"; shift 2 ;;
    ctl) shift; rmqctl "$@"; exit ;;
    install | start | stop | status) cmds+=("$1"); shift ;;
    *) die "usage: $0 install|start|stop|status|ctl [args] [--tag TAG]" ;;
  esac
done
((${#cmds[@]})) || die "usage: $0 install|start|stop|status|ctl [args] [--tag TAG]"
for c in "${cmds[@]}"; do "cmd_$c"; done
