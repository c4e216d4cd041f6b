#!/usr/bin/env bash
# A real Kubernetes control plane on 127.0.0.1 for the Kubernetes executor's tests and
# the manifests' server-side dry-run, with kwok playing the node and the pods:
#
#   etcd                     127.0.0.1:$CAESAR_K8S_ETCD_PORT (12379; peers 12380)
#   kube-apiserver           https://127.0.0.1:$CAESAR_K8S_PORT (16443), RBAC on
#   kube-controller-manager  the Job, garbage-collector, TTL, namespace, service-account and
#                            volume (binder, protection) controllers (no node lifecycle: kwok sends no heartbeats)
#   kube-scheduler           binds pods to the kwok node
#   kwok                     node kwok-node-0 (32 cpu, 64Gi, 110 pods); pod fates from
#                            the annotation kwok.caesar-rest.io/outcome (scripts/k8s/kwok-stages.yaml)
#
#   scripts/k8s.sh install|installed|start|stop|status|env [--tag TAG]
#
# install: build the binaries once from the Go module proxy into $TOOLS_DIR:
#   kubernetes-<version>/ (kube-apiserver, kube-controller-manager, kube-scheduler, kubectl;
#   about 15 minutes of two cores), etcd-<version>/etcd, kwok-<version>/kwok. k8s.io/kubernetes
#   cannot be required as is (its go.mod replaces its 31 staging modules with local paths):
#   the scratch module replaces each with the published k8s.io/<name> v0.<minor>.<patch>.
# installed: exit 0 if every binary is built (tests ask this rather than start a build).
# start: build if needed, write certificates, keys and kubeconfigs under $RUN_DIR/k8s
#   (created once, reused), start the five processes, wait until the API server is ready,
#   register the kwok node and wait until it is Ready. Logs in $LOG_DIR/k8s-*.log. Records
#   itself in $RUN_DIR/started-by-<tag> like scripts/infra.sh.
# stop: stop them (the data dir stays: a restart keeps the cluster's objects).
# env: CAESAR_K8S_ADMIN_KUBECONFIG (cluster-admin) and CAESAR_KUBECTL, as shell lines.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

KUBE_VERSION="${CAESAR_KUBE_VERSION:-v1.34.4}"
ETCD_VERSION="${CAESAR_ETCD_VERSION:-v3.6.5}"
KWOK_VERSION="${CAESAR_KWOK_VERSION:-v0.8.0}"
K8S_PORT="${CAESAR_K8S_PORT:-16443}"
ETCD_PORT="${CAESAR_K8S_ETCD_PORT:-12379}"
ETCD_PEER_PORT="${CAESAR_K8S_ETCD_PEER_PORT:-12380}"
KCM_PORT="${CAESAR_K8S_CONTROLLER_MANAGER_PORT:-16257}"
SCHED_PORT="${CAESAR_K8S_SCHEDULER_PORT:-16259}"
KWOK_PORT="${CAESAR_K8S_KWOK_PORT:-16247}"
KUBE_HOME="$TOOLS_DIR/kubernetes-$KUBE_VERSION"
ETCD_HOME="$TOOLS_DIR/etcd-$ETCD_VERSION"
KWOK_HOME="$TOOLS_DIR/kwok-$KWOK_VERSION"
KUBECTL="$KUBE_HOME/kubectl"
K8S_DIR="$RUN_DIR/k8s"
PKI="$K8S_DIR/pki"
ADMIN_KUBECONFIG="$K8S_DIR/admin.kubeconfig"
STAGES="$REPO/scripts/k8s/kwok-stages.yaml"
NODE_NAME=kwok-node-0
K8S_URL="https://127.0.0.1:$K8S_PORT"

# ---------------------------------------------------------------- install
kube_installed() {
  local bin
  for bin in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go_built "$KUBE_HOME/$bin" k8s.io/kubernetes "$KUBE_VERSION" || return 1
  done
}
etcd_installed() { go_built "$ETCD_HOME/etcd" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"; }
kwok_installed() { go_built "$KWOK_HOME/kwok" sigs.k8s.io/kwok "$KWOK_VERSION"; }
installed() { kube_installed && etcd_installed && kwok_installed; }

kube_requirements() {
  local gomod staging
  go_in_build mod download k8s.io/kubernetes@"$KUBE_VERSION"
  gomod="$(go_in_build mod download -json k8s.io/kubernetes@"$KUBE_VERSION" |
    sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
  # Each staging module at the tag published with this release (v1.34.4 -> v0.34.4).
  for staging in $(sed -n '/^replace (/,/^)/s/^[[:space:]]*\(k8s\.io\/[^ ]*\) => \.\/staging.*/\1/p' "$gomod"); do
    go_in_build mod edit -replace "$staging=$staging@v0.${KUBE_VERSION#v1.}"
  done
  local cmd
  for cmd in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    go_in_build get -tool "k8s.io/kubernetes/cmd/$cmd@$KUBE_VERSION"
  done
}

etcd_requirements() {
  mkdir -p cmd/etcd
  cat >cmd/etcd/main.go <<'GO'
// etcd's own server main, as the released binary runs it.
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  go_in_build get "go.etcd.io/etcd/server/v3@$ETCD_VERSION"
  go_in_build mod tidy
}

kwok_requirements() { go_in_build get -tool "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION"; }

cmd_install() {
  go_build_tools "kubernetes-$KUBE_VERSION" "$KUBE_HOME" kube_installed kube_requirements \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl
  go_build_tools "etcd-$ETCD_VERSION" "$ETCD_HOME" etcd_installed etcd_requirements ./cmd/etcd
  go_build_tools "kwok-$KWOK_VERSION" "$KWOK_HOME" kwok_installed kwok_requirements \
    sigs.k8s.io/kwok/cmd/kwok
}

cmd_installed() { installed; }

# ---------------------------------------------------------------- credentials
# A CA and the API server's serving certificate (127.0.0.1 and localhost), the service
# account signing key pair, and one static bearer token per client. Written once.
write_pki() {
  mkdir -p "$PKI"
  chmod 0700 "$K8S_DIR" "$PKI"
  [[ -s "$PKI/tokens.csv" ]] && return 0
  (
    cd "$PKI"
    umask 077
    openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=caesar-rest-test-ca" \
      -keyout ca.key -out ca.crt 2>/dev/null
    openssl req -newkey rsa:2048 -nodes -subj "/CN=kube-apiserver" -keyout apiserver.key \
      -out apiserver.csr 2>/dev/null
    printf 'subjectAltName=IP:127.0.0.1,DNS:localhost,DNS:kubernetes.default.svc\n' >apiserver.ext
    openssl x509 -req -in apiserver.csr -CA ca.crt -CAkey ca.key -CAcreateserial -days 3650 \
      -extfile apiserver.ext -out apiserver.crt 2>/dev/null
    openssl genrsa -out sa.key 2048 2>/dev/null
    openssl rsa -in sa.key -pubout -out sa.pub 2>/dev/null
    local who
    : >tokens.csv.tmp
    # token,user,uid,"groups": the control plane's clients are cluster admins here.
    for who in admin kube-controller-manager kube-scheduler kwok; do
      printf '%s,%s,%s,"system:masters"\n' "$(openssl rand -hex 24)" "$who" "$who" >>tokens.csv.tmp
    done
    mv tokens.csv.tmp tokens.csv
  )
}

token_of() { awk -F, -v who="$1" '$2 == who {print $1}' "$PKI/tokens.csv"; }

# kubeconfig_for USER FILE: a kubeconfig with USER's static token, trusting our CA
kubeconfig_for() {
  local ca
  ca="$(base64 -w0 <"$PKI/ca.crt")"
  umask 077
  cat >"$2" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: caesar-test
  cluster:
    server: $K8S_URL
    certificate-authority-data: $ca
users:
- name: $1
  user:
    token: $(token_of "$1")
contexts:
- name: caesar-test
  context:
    cluster: caesar-test
    user: $1
current-context: caesar-test
EOF
}

write_kubeconfigs() {
  local who
  for who in admin kube-controller-manager kube-scheduler kwok; do
    kubeconfig_for "$who" "$K8S_DIR/$who.kubeconfig"
  done
}

# ---------------------------------------------------------------- run
pidfile() { echo "$PID_DIR/k8s-$1.pid"; }
logfile() { echo "$LOG_DIR/k8s-$1.log"; }

etcd_up() { curl -fsS --max-time 2 "http://127.0.0.1:$ETCD_PORT/health" 2>/dev/null | grep -q '"health":"true"'; }
api_ready() {
  curl -fsS --max-time 2 --cacert "$PKI/ca.crt" -H "Authorization: Bearer $(token_of admin)" \
    "$K8S_URL/readyz" >/dev/null 2>&1
}
kctl() { "$KUBECTL" --kubeconfig "$ADMIN_KUBECONFIG" "$@"; }
component_healthy() { curl -fsSk --max-time 2 "https://127.0.0.1:$1/healthz" >/dev/null 2>&1; }
node_ready() {
  [[ "$(kctl get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" == True ]]
}

start_etcd() {
  pid_alive "$(pidfile etcd)" etcd && return 0
  port_open "$ETCD_PORT" && die "port $ETCD_PORT is taken by something else"
  mkdir -p "$K8S_DIR/etcd"
  chmod 0700 "$K8S_DIR/etcd"
  spawn "$(pidfile etcd)" "$(logfile etcd)" "$ETCD_HOME/etcd" --name caesar-test \
    --data-dir "$K8S_DIR/etcd" \
    --listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
    --listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
    --initial-cluster "caesar-test=http://127.0.0.1:$ETCD_PEER_PORT" \
    --listen-metrics-urls "" --unsafe-no-fsync --quota-backend-bytes 1073741824 --log-level warn
  await_up "$(pidfile etcd)" etcd "$(logfile etcd)" 60 etcd_up || die "etcd did not start"
}

start_apiserver() {
  pid_alive "$(pidfile apiserver)" kube-apiserver && return 0
  port_open "$K8S_PORT" && die "port $K8S_PORT is taken by something else"
  spawn "$(pidfile apiserver)" "$(logfile apiserver)" "$KUBE_HOME/kube-apiserver" \
    --bind-address 127.0.0.1 --advertise-address 127.0.0.1 --secure-port "$K8S_PORT" \
    --etcd-servers "http://127.0.0.1:$ETCD_PORT" \
    --tls-cert-file "$PKI/apiserver.crt" --tls-private-key-file "$PKI/apiserver.key" \
    --client-ca-file "$PKI/ca.crt" --token-auth-file "$PKI/tokens.csv" --anonymous-auth=false --authorization-mode RBAC \
    --service-account-issuer https://kubernetes.default.svc \
    --service-account-key-file "$PKI/sa.pub" --service-account-signing-key-file "$PKI/sa.key" \
    --service-cluster-ip-range 10.96.0.0/24 --allow-privileged=false \
    --enable-priority-and-fairness=false --profiling=false
  await_up "$(pidfile apiserver)" kube-apiserver "$(logfile apiserver)" 120 api_ready ||
    die "kube-apiserver did not start"
}

start_controller_manager() {
  pid_alive "$(pidfile controller-manager)" kube-controller-manager && return 0
  spawn "$(pidfile controller-manager)" "$(logfile controller-manager)" "$KUBE_HOME/kube-controller-manager" \
    --kubeconfig "$K8S_DIR/kube-controller-manager.kubeconfig" \
    --authentication-kubeconfig "$K8S_DIR/kube-controller-manager.kubeconfig" \
    --authorization-kubeconfig "$K8S_DIR/kube-controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$KCM_PORT" --leader-elect=false \
    --controllers job-controller,garbage-collector-controller,ttl-after-finished-controller,namespace-controller,serviceaccount-controller,serviceaccount-token-controller,pod-garbage-collector-controller,root-ca-certificate-publisher-controller,persistentvolume-binder-controller,persistentvolume-protection-controller,persistentvolumeclaim-protection-controller \
    --service-account-private-key-file "$PKI/sa.key" --root-ca-file "$PKI/ca.crt" \
    --use-service-account-credentials=false --profiling=false --pvclaimbinder-sync-period 1s
  await_up "$(pidfile controller-manager)" kube-controller-manager "$(logfile controller-manager)" 60 \
    component_healthy "$KCM_PORT" || die "kube-controller-manager did not start"
}

start_scheduler() {
  pid_alive "$(pidfile scheduler)" kube-scheduler && return 0
  spawn "$(pidfile scheduler)" "$(logfile scheduler)" "$KUBE_HOME/kube-scheduler" \
    --kubeconfig "$K8S_DIR/kube-scheduler.kubeconfig" \
    --authentication-kubeconfig "$K8S_DIR/kube-scheduler.kubeconfig" \
    --authorization-kubeconfig "$K8S_DIR/kube-scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --secure-port "$SCHED_PORT" --leader-elect=false --profiling=false
  await_up "$(pidfile scheduler)" kube-scheduler "$(logfile scheduler)" 60 \
    component_healthy "$SCHED_PORT" || die "kube-scheduler did not start"
}

kwok_up() { port_open "$KWOK_PORT"; }

start_kwok() {
  pid_alive "$(pidfile kwok)" kwok && return 0
  spawn "$(pidfile kwok)" "$(logfile kwok)" "$KWOK_HOME/kwok" \
    --kubeconfig "$K8S_DIR/kwok.kubeconfig" --config "$STAGES" \
    --manage-all-nodes=false --manage-nodes-with-annotation-selector kwok.x-k8s.io/node=fake \
    --node-ip 127.0.0.1 --server-address "127.0.0.1:$KWOK_PORT" --node-lease-duration-seconds 0
  await_up "$(pidfile kwok)" kwok "$(logfile kwok)" 60 kwok_up || die "kwok did not start"
}

register_node() {
  kctl apply --server-side --field-manager caesar-k8s-sh -f - >/dev/null <<EOF
apiVersion: v1
kind: Node
metadata:
  name: $NODE_NAME
  annotations:
    kwok.x-k8s.io/node: fake
  labels:
    kubernetes.io/hostname: $NODE_NAME
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    type: kwok
status:
  allocatable: {cpu: "32", memory: 64Gi, pods: "110"}
  capacity: {cpu: "32", memory: 64Gi, pods: "110"}
EOF
  local deadline=$((SECONDS + 60))
  until node_ready; do
    ((SECONDS < deadline)) || die "node $NODE_NAME did not become Ready (log: $(logfile kwok))"
    sleep 0.5
  done
  # The API server taints a new node not-ready; the node lifecycle controller, which would
  # lift it, is not run (kwok sends no heartbeats and it would evict every pod).
  kctl taint node "$NODE_NAME" node.kubernetes.io/not-ready:NoSchedule- >/dev/null 2>&1 || true
  [[ -z "$(kctl get node "$NODE_NAME" -o jsonpath='{.spec.taints}')" ]] ||
    die "node $NODE_NAME keeps taints: $(kctl get node "$NODE_NAME" -o jsonpath='{.spec.taints}')"
}

cmd_start() {
  cmd_install
  mkdir -p "$LOG_DIR" "$PID_DIR"
  write_pki
  write_kubeconfigs
  start_etcd
  start_apiserver
  start_controller_manager
  start_scheduler
  start_kwok
  register_node
  record k8s
  log "Kubernetes $KUBE_VERSION up: $K8S_URL (admin kubeconfig: $ADMIN_KUBECONFIG)"
}

cmd_stop() {
  release k8s Kubernetes || return 0
  local what
  for what in kwok:kwok scheduler:kube-scheduler controller-manager:kube-controller-manager \
    apiserver:kube-apiserver etcd:etcd; do
    kill_pidfile "$(pidfile "${what%%:*}")" "${what#*:}" 15
  done
}

cmd_status() {
  local what
  for what in etcd:etcd apiserver:kube-apiserver controller-manager:kube-controller-manager \
    scheduler:kube-scheduler kwok:kwok; do
    if pid_alive "$(pidfile "${what%%:*}")" "${what#*:}"; then
      printf '%-24s running  pid=%s\n' "${what#*:}:" "$(<"$(pidfile "${what%%:*}")")"
    else
      printf '%-24s stopped\n' "${what#*:}:"
    fi
  done
}

cmd_env() {
  echo "CAESAR_K8S_ADMIN_KUBECONFIG=$ADMIN_KUBECONFIG"
  echo "CAESAR_KUBECTL=$KUBECTL"
}

dispatch "usage: $0 install|installed|start|stop|status|env [--tag TAG]" "install installed start stop status env" "$@"
