#!/usr/bin/env bash
# A local Keycloak for development and tests: the server distribution from Maven
# Central (org.keycloak:keycloak-quarkus-dist, zip) in dev mode on 127.0.0.1:8180,
# with the caesar realm imported from deploy/keycloak/caesar-realm-dev.json.
#
# DEVELOPMENT ONLY. That realm has known users and passwords (alice, bob, admin carol;
# <name>-dev-password) and lets the caesar-cli client take a username and password
# (the tests and `token` below need it). docker-compose.yml imports
# deploy/keycloak/caesar-realm.json instead: no users, device login only.
#
#   scripts/keycloak.sh install|start|stop|status|token USER PASSWORD [--tag TAG]
#
# install: fetch (mvn dependency:get, cached in ~/.m2 and unpacked under
#   ~/.cache/caesar-rest/keycloak) once per version.
# start: run it with its own home under $RUN_DIR/keycloak (bin and conf copied, lib,
#   providers and themes linked to the cache), so the H2 dev database and the realm
#   import are per checkout; waits until the realm's OIDC discovery answers. Records
#   itself in $RUN_DIR/started-by-<tag> like scripts/infra.sh; `stop --tag T` stops it
#   only if no other tag still records it. The admin console user is `admin` with
#   KEYCLOAK_ADMIN_PASSWORD from $RUN_DIR/secrets.env (made by scripts/credentials.py
#   if missing). A database made by an older version of this script (admin/admin, the
#   realm before it was split) is deleted and made again from the realm file.
# token: print an access token of USER from the public caesar-cli client (password
#   grant: the development realm only; the compose realm has device login instead).
#
# Java: Keycloak 26 runs on Java 17 (deprecated) and 21+; the newest JDK >= 17 under
# /usr/lib/jvm is used unless JAVA_HOME is set.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KC_VERSION="${CAESAR_KEYCLOAK_VERSION:-26.7.3}"
KC_PORT="${CAESAR_KEYCLOAK_PORT:-8180}"
KC_REALM="${CAESAR_KEYCLOAK_REALM:-caesar}"
KC_CACHE="$HOME/.cache/caesar-rest/keycloak"
KC_DIST="$KC_CACHE/keycloak-$KC_VERSION"
KC_DIR="$RUN_DIR/keycloak"
KC_HOME="$KC_DIR/home"
KC_PID="$PID_DIR/keycloak.pid"
KC_LOG="$LOG_DIR/keycloak.log"
KC_URL="http://127.0.0.1:$KC_PORT"
REALM_FILE="$REPO/deploy/keycloak/caesar-realm-dev.json"
SECRETS_FILE="$RUN_DIR/secrets.env"
# Bump when the local database must be made again from scratch (1: admin/admin and the
# unsplit realm; 2: admin password from $SECRETS_FILE, caesar-realm-dev.json; 3: the web
# client's loopback redirect URIs for the browser tests).
KC_DATA_VERSION=3
KC_DATA_VERSION_FILE="$KC_DIR/data-version"

pick_java_home() {
  [[ -n "${JAVA_HOME:-}" ]] && return 0
  local best="" best_v=0 d v
  for d in /usr/lib/jvm/*/; do
    [[ -x "$d/bin/java" ]] || continue
    v="$("$d/bin/java" -version 2>&1 | sed -n 's/.*version "\([0-9]*\).*/\1/p' | head -n 1)"
    [[ "$v" =~ ^[0-9]+$ ]] || continue
    # Keycloak's Quarkus supports the LTS releases 17 and 21; newer JDKs may not be.
    if ((v >= 17 && v <= 21 && v > best_v)); then best="${d%/}" best_v="$v"; fi
  done
  [[ -n "$best" ]] || die "no JDK 17..21 under /usr/lib/jvm (Keycloak $KC_VERSION needs one)"
  export JAVA_HOME="$best"
}

cmd_install() {
  [[ -x "$KC_DIST/bin/kc.sh" ]] && { log "Keycloak $KC_VERSION already unpacked in $KC_DIST"; return 0; }
  command -v mvn >/dev/null || die "mvn not found (apt-get install maven)"
  local zip="$HOME/.m2/repository/org/keycloak/keycloak-quarkus-dist/$KC_VERSION/keycloak-quarkus-dist-$KC_VERSION.zip"
  if [[ ! -s "$zip" ]]; then
    log "fetching org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip from Maven Central"
    mvn -q dependency:get -Dartifact="org.keycloak:keycloak-quarkus-dist:$KC_VERSION:zip" -Dtransitive=false
  fi
  mkdir -p "$KC_CACHE"
  local tmp
  tmp="$(mktemp -d "$KC_CACHE/unpack.XXXXXX")"
  unzip -q "$zip" -d "$tmp"
  mv "$tmp/keycloak-$KC_VERSION" "$KC_DIST"
  rmdir "$tmp"
}

prepare_home() {
  mkdir -p "$KC_HOME/data/import" "$LOG_DIR" "$PID_DIR"
  # Copied, not linked: kc.sh finds its home from its own resolved path.
  rm -rf "$KC_HOME/bin" "$KC_HOME/conf"
  cp -r "$KC_DIST/bin" "$KC_DIST/conf" "$KC_HOME/"
  local d
  for d in lib providers themes; do ln -sfn "$KC_DIST/$d" "$KC_HOME/$d"; done
  cp "$REALM_FILE" "$KC_HOME/data/import/caesar-realm.json"
}

# The admin password of the local Keycloak: KEYCLOAK_ADMIN_PASSWORD of $SECRETS_FILE,
# which is made (or completed) first; existing values are kept.
admin_password() {
  python3 "$REPO/scripts/credentials.py" env "$SECRETS_FILE"
  local value
  value="$(sed -n 's/^KEYCLOAK_ADMIN_PASSWORD=//p' "$SECRETS_FILE" | tail -n 1)"
  [[ -n "$value" ]] || die "no KEYCLOAK_ADMIN_PASSWORD in $SECRETS_FILE"
  printf '%s' "$value"
}

# Keycloak creates its bootstrap admin and imports the realm only into an empty database:
# one made by an older version of this script keeps admin/admin and the old realm, so it
# is dropped (local development data only; the realm and its users come from the file).
reset_stale_data() {
  local have=""
  [[ -f "$KC_DATA_VERSION_FILE" ]] && have="$(<"$KC_DATA_VERSION_FILE")"
  [[ "$have" == "$KC_DATA_VERSION" ]] && return 0
  if [[ -d "$KC_HOME/data/h2" ]]; then
    log "dropping the local Keycloak database (made by an older scripts/keycloak.sh: an older realm)"
    rm -rf "$KC_HOME/data/h2"
  fi
  mkdir -p "$KC_DIR"
  echo "$KC_DATA_VERSION" >"$KC_DATA_VERSION_FILE"
}

discovery_url() { printf '%s/realms/%s/.well-known/openid-configuration' "$KC_URL" "$KC_REALM"; }

cmd_start() {
  if pid_alive "$KC_PID" keycloak; then
    log "Keycloak already running (pid $(<"$KC_PID"))"
    record keycloak
    return 0
  fi
  if port_open "$KC_PORT"; then
    curl -fsS -o /dev/null --max-time 3 "$(discovery_url)" &&
      { log "reusing the Keycloak already answering on $KC_URL"; return 0; }
    die "port $KC_PORT is taken by something else"
  fi
  cmd_install
  pick_java_home
  local password
  password="$(admin_password)"
  reset_stale_data
  prepare_home
  log "starting Keycloak $KC_VERSION on $KC_URL (JAVA_HOME=$JAVA_HOME)"
  local t0=$SECONDS
  # Dev mode: H2 file database under $KC_HOME/data, HTTP only; the realm is imported
  # on first start (an existing realm is kept). The admin console user is local-only;
  # its password goes in the environment, never on a command line.
  (cd "$KC_DIR" && KC_BOOTSTRAP_ADMIN_USERNAME=admin KC_BOOTSTRAP_ADMIN_PASSWORD="$password" \
    spawn "$KC_PID" "$KC_LOG" "$KC_HOME/bin/kc.sh" start-dev \
    --http-host 127.0.0.1 --http-port "$KC_PORT" --import-realm)
  if ! wait_http "$(discovery_url)" "${CAESAR_KEYCLOAK_START_TIMEOUT:-240}" "$KC_PID"; then
    tail -n 40 "$KC_LOG" >&2 || true
    kill_pidfile "$KC_PID" keycloak 10
    die "Keycloak did not start"
  fi
  log "Keycloak ready in $((SECONDS - t0))s"
  record keycloak
}

cmd_stop() {
  release keycloak Keycloak || return 0
  kill_pidfile "$KC_PID" keycloak 30
}

cmd_status() {
  if pid_alive "$KC_PID" keycloak; then
    echo "keycloak:   running  pid=$(<"$KC_PID") url=$KC_URL realm=$KC_REALM"
  elif curl -fsS -o /dev/null --max-time 3 "$(discovery_url)" 2>/dev/null; then
    echo "keycloak:   running  url=$KC_URL (started elsewhere)"
  else
    echo "keycloak:   stopped"
  fi
}

cmd_token() {
  local user="${1:?usage: token USER PASSWORD}" password="${2:?usage: token USER PASSWORD}"
  curl -fsS "$KC_URL/realms/$KC_REALM/protocol/openid-connect/token" \
    --data-urlencode grant_type=password --data-urlencode client_id=caesar-cli \
    --data-urlencode "username=$user" --data-urlencode "password=$password" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])'
}


TAG="${CAESAR_START_TAG:-manual}"
STOP_TAG=""
cmds=()
args=()
while (($#)); do
  case "$1" in
    --tag) TAG="$2" STOP_TAG="$2"; shift 2 ;;
    install | start | stop | status | token) cmds+=("$1"); shift ;;
    *) args+=("$1"); shift ;;
  esac
done
((${#cmds[@]})) || die "usage: $0 install|start|stop|status|token USER PASSWORD [--tag TAG]"
for c in "${cmds[@]}"; do "cmd_$c" "${args[@]}"; done
