#!/usr/bin/env bash
# Gateway benchmark: authenticated GET /v1/apps/{appId} through the gateway (and over NATS to
# appmeta, with token verification in both) versus a bare axum hello-world, same machine, same
# run, same load generator (wrk, 64 connections). Also reports the idle RSS of
# `sreworks serve --target all` and its start-up time to /readyz.
#
#   loadtests/gateway-bench.sh            # DURATION=15 CONNECTIONS=64 THREADS=2 by default
#
# Needs the infrastructure of `make up` (it calls scripts/infra.sh ensure) and installs wrk from
# Debian if missing. Bounded: every request loop is wrk with a fixed duration against 127.0.0.1.
set -euo pipefail
cd "$(dirname "$0")/.."

DURATION=${DURATION:-15}
CONNECTIONS=${CONNECTIONS:-64}
THREADS=${THREADS:-2}
GW_PORT=${GW_PORT:-18080}
BARE_PORT=${BARE_PORT:-18081}
# shellcheck source=loadtests/lib.sh
source loadtests/lib.sh

if ! command -v wrk >/dev/null; then
  echo "installing wrk (Debian)"; apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq wrk >/dev/null || die "could not install wrk"
fi
bench_init gateway-bench
export SREWORKS_GATEWAY__LISTEN=127.0.0.1:$GW_PORT

t0=$(date +%s%N)
"$BIN/sreworks" serve --target all >/tmp/sw-bench-server.log 2>&1 &
sw_pid=$!; pids+=("$sw_pid")
bench_wait_ready "$GW_PORT" /tmp/sw-bench-server.log
t1=$(date +%s%N)
startup_ms=$(( (t1 - t0) / 1000000 ))
sleep 3
idle_rss_kb=$(awk '/VmRSS/ {print $2}' "/proc/$sw_pid/status")

token=$(bench_token "$GW_PORT")
curl -fs -X POST "http://127.0.0.1:$GW_PORT/v1/apps" -H "authorization: Bearer $token" \
  -H 'content-type: application/json' -d '{"appId":"bench","name":"bench"}' >/dev/null || die "create app failed"
curl -fs "http://127.0.0.1:$GW_PORT/v1/apps/bench" -H "authorization: Bearer $token" >/dev/null || die "get app failed"

"$BIN/bare-hello" "127.0.0.1:$BARE_PORT" & pids+=("$!")
sleep 0.5

bench() { # url [header]
  local out
  if [ $# -gt 1 ]; then out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency -H "$2" "$1");
  else out=$(wrk -t"$THREADS" -c"$CONNECTIONS" -d"${DURATION}s" --latency "$1"); fi
  local rps p50 p99 non2xx
  rps=$(awk '/Requests\/sec/ {print $2}' <<<"$out")
  p50=$(awk '$1=="50%" {print $2}' <<<"$out")
  p99=$(awk '$1=="99%" {print $2}' <<<"$out")
  non2xx=$(awk '/Non-2xx/ {print $NF}' <<<"$out")
  echo "$rps $p50 $p99 ${non2xx:-0}"
}

echo "warming up..."
wrk -t1 -c8 -d3s -H "authorization: Bearer $token" "http://127.0.0.1:$GW_PORT/v1/apps/bench" >/dev/null
read -r gw_rps gw_p50 gw_p99 gw_errs <<<"$(bench "http://127.0.0.1:$GW_PORT/v1/apps/bench" "authorization: Bearer $token")"
echo "gateway: $gw_rps req/s p50 $gw_p50 p99 $gw_p99 non-2xx $gw_errs"
peak_rss_kb=$(awk '/VmHWM/ {print $2}' "/proc/$sw_pid/status")
read -r bare_rps bare_p50 bare_p99 _ <<<"$(bench "http://127.0.0.1:$BARE_PORT/v1/apps/bench")"
ratio=$(python3 -c "import sys; print(f'{100*float(sys.argv[1])/float(sys.argv[2]):.1f}')" "$gw_rps" "$bare_rps")

cat <<REPORT

sreworks gateway benchmark ($(nproc) cores, wrk -t$THREADS -c$CONNECTIONS -d${DURATION}s)
  gateway  GET /v1/apps/bench (authenticated, via NATS to appmeta): $gw_rps req/s  p50 $gw_p50  p99 $gw_p99  non-2xx $gw_errs
  bare axum hello-world:                                          $bare_rps req/s  p50 $bare_p50  p99 $bare_p99
  gateway / bare: $ratio %   (goal >= 30 %, p99 < 10 ms)
  sreworks serve --target all: start-up to /readyz $startup_ms ms (goal < 2000), idle RSS $((idle_rss_kb / 1024)) MiB (goal < 150), peak RSS under load $((peak_rss_kb / 1024)) MiB
REPORT
