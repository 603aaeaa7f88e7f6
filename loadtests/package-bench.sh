#!/usr/bin/env bash
# Package benchmark: import and download of SREWorks app packages through the gateway, beside a raw
# S3 PUT/GET of the same bytes to the same S3 server in the same run, and the peak RSS growth of
# the package-store process (run on its own: `sreworks serve --target package-store`, the gateway
# and auth in a second process).
#
#   loadtests/package-bench.sh                 # SIZES=10,100,1024 (MiB)
#   SIZES=10,100 loadtests/package-bench.sh
#
# Needs the infrastructure of `make up` (it calls scripts/infra.sh ensure, which starts s3s-fs when
# no S3 endpoint is configured) and about 3x the largest size free on disk (package file, S3 copy,
# spool copy). Goal: import and download >= 80 % of raw S3 throughput; RSS growth < 64 MiB.
set -euo pipefail
cd "$(dirname "$0")/.."

SIZES=${SIZES:-10,100,1024}
GW_PORT=${GW_PORT:-18090}
# shellcheck source=loadtests/lib.sh
source loadtests/lib.sh

bench_init package-bench
[ -n "${SREWORKS_S3__ENDPOINT:-}" ] || die "no S3 endpoint (scripts/infra.sh should have set SREWORKS_S3__ENDPOINT)"
export SREWORKS_GATEWAY__LISTEN=127.0.0.1:$GW_PORT
export SREWORKS_PACKAGE_STORE__MAX_PACKAGE_BYTES=$((5 * 1024 * 1024 * 1024))
export SREWORKS_PACKAGE_STORE__MAX_UNCOMPRESSED_BYTES=$((12 * 1024 * 1024 * 1024))

"$BIN/sreworks" serve --target package-store >/tmp/sw-pkgbench-store.log 2>&1 &
ps_pid=$!; pids+=("$ps_pid")
"$BIN/sreworks" serve --target gateway,auth >/tmp/sw-pkgbench-gw.log 2>&1 &
pids+=("$!")
bench_wait_ready "$GW_PORT" /tmp/sw-pkgbench-gw.log /tmp/sw-pkgbench-store.log
sleep 1
token=$(bench_token "$GW_PORT")

echo "package-store pid $ps_pid, idle RSS $(awk '/VmRSS/ {print $2}' "/proc/$ps_pid/status") kB"
SW_BENCH_GATEWAY="http://127.0.0.1:$GW_PORT" SW_BENCH_TOKEN=$token SW_BENCH_PS_PID=$ps_pid \
  SW_BENCH_SIZES=$SIZES SW_BENCH_BUCKET="${run_id}-raw" "$BIN/package-bench"
echo
echo "($(nproc) cores; S3 server: $SREWORKS_S3__ENDPOINT; goal: >= 80 % of raw S3, RSS growth < 64 MiB)"
