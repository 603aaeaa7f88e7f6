#!/usr/bin/env bash
# Executor benchmark: apply commands per second rendered and applied by the k8s-executor against the
# Kubernetes API emulator (tests/k8s-emulator), for a 3-object component (ConfigMap, Deployment,
# Service); a first pass creates N component instances, a second re-applies them at revision 2.
# Then the executor's own time per command (render + building the apply requests, no network), and
# the process's CPU and RSS around each phase.
#
#   loadtests/executor-bench.sh                     # N=300 commands per pass
#   N=50 MICRO_ITERS=5000 loadtests/executor-bench.sh
#   CONCURRENCY=4 loadtests/executor-bench.sh        # the consumer's concurrency (default: the service's)
#
# The executor runs inside the `executor-bench` process (its own database and subject prefix for
# this run), so the CPU and RSS it prints cover the executor and the light driver beside it. Needs
# the infrastructure of `make up` (scripts/infra.sh ensure) and python3 for the emulator. Exits
# non-zero when a command failed or a pass timed out (TIMEOUT_SECS per pass, default 300).
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-300}
# shellcheck source=loadtests/lib.sh
source loadtests/lib.sh
BENCH_NAME=executor-bench

# bench_init's set-up without the platform binary and its migrate (the executor migrates its own
# database when it starts): infra, its env, release build, an isolated run id.
scripts/infra.sh ensure
for f in .local/secrets.env .local/run/infra.env; do
  if [ -f "$f" ]; then set -a; . "$f"; set +a; fi
done
echo "building release binaries..."
cargo build --release -q -p sw-loadtests
BIN=$CARGO_TARGET_DIR/release
run_id="b$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
export SREWORKS_NATS__PREFIX=$run_id
export SREWORKS_DATABASE__NAME_PREFIX="${run_id}_"
export SREWORKS_REDIS__PREFIX=$run_id
export SREWORKS_LOG__FILTER=${BENCH_LOG_FILTER:-warn}
# An error is one line, not anyhow's backtrace (panics keep theirs).
export RUST_LIB_BACKTRACE=${RUST_LIB_BACKTRACE:-0}

work=$(mktemp -d)
cleanup() {
  bench_cleanup
  rm -rf "$work"
}
trap cleanup EXIT

bench_start_emulator "$work"
echo "emulator pid $emu_pid on 127.0.0.1:$port; run $run_id"

status=0
SW_BENCH_K8S_URL="http://127.0.0.1:$port" SW_BENCH_EMULATOR_PID=$emu_pid SW_BENCH_N=$N \
  SW_BENCH_MICRO_ITERS=${MICRO_ITERS:-} SW_BENCH_TIMEOUT_SECS=${TIMEOUT_SECS:-} \
  SW_BENCH_CONCURRENCY=${CONCURRENCY:-} SW_BENCH_CLK_TCK=$(getconf CLK_TCK) \
  "$BIN/executor-bench" || status=$?
echo
echo "($(nproc) cores; executor, driver, emulator, NATS and MariaDB on this machine)"
if ((status != 0)); then
  echo "emulator log (last lines):" >&2
  tail -5 "$work/emulator.log" >&2 || true
  die "failed (exit $status)"
fi
