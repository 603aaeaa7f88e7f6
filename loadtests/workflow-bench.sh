#!/usr/bin/env bash
# Workflow benchmark: N launches at once of a 3-component app (three K8S_MANIFESTS components, one
# ConfigMap each, applied step after step) through the gateway, against the k8s-executor and the
# Kubernetes API emulator. Prints launches/s (accepted and completed), launch → SUCCESS p50/p95/p99/max,
# the engine's overhead per step from the events' times (start, hand-off, dispatch, result handling,
# finish; the executor's apply + health watch excluded; queueing included), the engine's own time per
# step (its transactions for the step, begin to commit, summed: src/bin/workflow-bench/own.rs), the
# count of failed, stuck and lost deployments, and the CPU and RSS of the process.
#
#   loadtests/workflow-bench.sh                      # N=200 launches
#   N=50 TIMEOUT_SECS=120 loadtests/workflow-bench.sh
#   SREWORKS_EXECUTOR__HEALTH_POLL_MS=500 loadtests/workflow-bench.sh   # any SREWORKS_* setting applies
#   SREWORKS_WORKFLOW__RESULTS_CONCURRENCY=2 SREWORKS_WORKFLOW__LAUNCH_CONCURRENCY=4 loadtests/workflow-bench.sh
#
# The whole suite (gateway, auth, appmeta, package-store, workflow, k8s-executor) runs inside the
# `workflow-bench` process on this run's own databases, subject prefix and bucket, so the CPU and RSS
# it prints cover the suite and the light driver beside it. Needs the infrastructure of `make up`
# (scripts/infra.sh ensure) and python3 for the emulator. Goal: the engine's own time per step < 20 ms
# at p99 and no lost or stuck deployment. Exits non-zero when a launch was refused or a deployment
# failed, stuck (not ended within TIMEOUT_SECS of the launches, default 300) or was lost.
set -euo pipefail
cd "$(dirname "$0")/.."

N=${N:-200}
# shellcheck source=loadtests/lib.sh
source loadtests/lib.sh

bench_init workflow-bench

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
  SW_BENCH_TIMEOUT_SECS=${TIMEOUT_SECS:-} SW_BENCH_CLK_TCK=$(getconf CLK_TCK) \
  "$BIN/workflow-bench" || status=$?
echo
echo "($(nproc) cores; the suite, driver, emulator, NATS, MariaDB, Redis and S3 on this machine)"
if ((status != 0)); then
  echo "emulator log (last lines):" >&2
  tail -5 "$work/emulator.log" >&2 || true
  die "failed (exit $status)"
fi
