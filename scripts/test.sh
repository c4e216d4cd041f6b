#!/usr/bin/env bash
# The full check suite, as CI runs it: infra up, ruff, mypy, pytest; then stop
# whatever this run started. Extra arguments go to pytest.
# Every step runs even if an earlier one failed; exit is non-zero if any did.
set -euo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"
cd "$REPO"

# Every process the checks start inherits this marker, so cleanup can find the
# ones still running (services spawned by e2e tests, detached or not) and end
# exactly those. Exported only after the infra start: the broker and the
# database we may reuse are not ours to kill here.
RUN_ID="caesar-test-$$-$RANDOM"

kill_marked() {
  local pids=() f pid
  # env -u: grep must not match its own environment.
  for f in $(env -u CAESAR_TEST_RUN_ID grep -lzx "CAESAR_TEST_RUN_ID=$RUN_ID" \
    /proc/[0-9]*/environ 2>/dev/null); do
    pid="${f#/proc/}"
    pid="${pid%/environ}"
    [[ "$pid" != "$$" ]] && proc_live "$pid" && pids+=("$pid")
  done
  ((${#pids[@]})) || return 0
  log "ending ${#pids[@]} leftover process(es) started by the tests: ${pids[*]}"
  kill -TERM "${pids[@]}" 2>/dev/null || true
  local deadline=$((SECONDS + 15))
  for pid in "${pids[@]}"; do
    while proc_live "$pid" && ((SECONDS < deadline)); do sleep 0.2; done
    proc_live "$pid" && kill -KILL "$pid" 2>/dev/null
  done
  return 0
}

cleanup() {
  local rc=$?
  set +e
  kill_marked
  "$REPO/scripts/keycloak.sh" stop --tag test
  "$REPO/scripts/slurm.sh" stop --tag test
  "$REPO/scripts/k8s.sh" stop --tag test
  "$REPO/scripts/infra.sh" stop --tag test
  exit "$rc"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# The Kubernetes executor's and the manifests' tests need a real API server. Building its
# binaries is the longest step on a fresh machine (about 12 minutes of CPU; cached after),
# so it runs while the rest installs, which mostly waits on the network. It carries the
# run's marker, so the cleanup ends it if this script stops early.
mkdir -p "$LOG_DIR"
CAESAR_TEST_RUN_ID="$RUN_ID" scripts/k8s.sh install >"$LOG_DIR/k8s-install.log" 2>&1 &
k8s_install=$!
scripts/infra.sh install start --tag test || die "infrastructure did not come up"
scripts/slurm.sh install start --tag test >/dev/null || die "Slurm did not come up"
scripts/prometheus.sh install || die "Prometheus (promtool) did not install"
scripts/jaeger.sh install || die "Jaeger could not be built (tests/e2e/test_tracing.py needs it)"
scripts/asyncapi.sh install || die "the AsyncAPI parser did not install (tests/unit/test_asyncapi.py needs it)"
scripts/browser.sh install >/dev/null || die "Chromium did not install (tests/e2e/test_web_*.py need it)"
scripts/axe.sh install || die "axe-core did not install (tests/e2e/test_web_*.py need it)"
wait "$k8s_install" || { tail -n 30 "$LOG_DIR/k8s-install.log" >&2; die "the Kubernetes binaries did not build"; }
scripts/k8s.sh start --tag test || die "the Kubernetes test cluster did not come up"
# The auth tests need the real Keycloak; with it up they must not skip.
scripts/keycloak.sh start --tag test || die "Keycloak did not come up"
export CAESAR_TEST_REQUIRE_KEYCLOAK=1
export CAESAR_RUN_DIR="$RUN_DIR" CAESAR_AMQP_URL CAESAR_MONGO_URL CAESAR_TEST_RUN_ID="$RUN_ID"
# Tests that restart the infrastructure (the chaos database restart) record it under
# this run's tag, so the cleanup below stops what they started too.
export CAESAR_START_TAG=test

results=()
failed=0
step() {
  local name="$1" rc=0 t0=$SECONDS
  shift
  log "=== $name: $*"
  "$@" || rc=$?
  if ((rc == 0)); then
    results+=("PASS  $name ($((SECONDS - t0))s)")
  else
    results+=("FAIL  $name (exit $rc, $((SECONDS - t0))s)")
    failed=1
  fi
}

step ruff .venv/bin/ruff check .
step ruff-format .venv/bin/ruff format --check .
step mypy .venv/bin/mypy libs/*/src services/*/src clients/*/src
step mypy-tests .venv/bin/mypy tests
# Exit 5 (no tests collected) is non-zero, so it fails too, as it should. Coverage is
# measured in the test process (services the e2e tests start as processes are not);
# the data file goes to the run directory, not the work tree.
export COVERAGE_FILE="$RUN_DIR/coverage"
# Two phases. Every test but the chaos ones keeps to its own vhost, database prefix, stack
# and ports, so they run on two workers, a module on one worker (its stack is built once)
# and the Keycloak modules on one worker together (tests/conftest.py says why); the
# slowest directories are listed first so they do not start last.
# The chaos tests restart the shared broker and database, so they run alone afterwards.
# CAESAR_TEST_WORKERS=0 runs the first phase in one process too.
workers="${CAESAR_TEST_WORKERS:-2}"
parallel=()
((workers > 0)) && parallel=(-n "$workers" --dist loadgroup)
step pytest .venv/bin/pytest -q -p no:cacheprovider "${parallel[@]}" --durations=25 --cov --cov-report= \
  tests/fuzz tests/e2e tests/integration tests/unit "$@"
step pytest-chaos .venv/bin/pytest -q -p no:cacheprovider --durations=10 --cov --cov-append \
  --cov-report=term:skip-covered tests/chaos "$@"

printf '\n=== summary\n'
printf '%s\n' "${results[@]}"
if total="$(.venv/bin/coverage report --format=total 2>/dev/null)"; then
  printf 'coverage total: %s%%\n' "$total"
fi
exit "$failed"
