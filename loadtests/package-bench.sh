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
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sreworks/target}

die() { echo "package-bench: $*" >&2; exit 1; }

scripts/infra.sh ensure
for f in .local/secrets.env .local/run/infra.env; do
  if [ -f "$f" ]; then set -a; . "$f"; set +a; fi
done
[ -n "${SREWORKS_S3__ENDPOINT:-}" ] || die "no S3 endpoint (scripts/infra.sh should have set SREWORKS_S3__ENDPOINT)"

echo "building release binaries..."
cargo build --release -q -p sreworks -p sw-loadtests
BIN=$CARGO_TARGET_DIR/release

run_id="b$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
export SREWORKS_NATS__PREFIX=$run_id
export SREWORKS_DATABASE__NAME_PREFIX="${run_id}_"
export SREWORKS_REDIS__PREFIX=$run_id
export SREWORKS_S3__BUCKET="${run_id}-packages"
export SREWORKS_GATEWAY__LISTEN=127.0.0.1:$GW_PORT
export SREWORKS_GATEWAY__RATE_LIMIT_PER_MINUTE=1000000000
export SREWORKS_LOG__FILTER=${BENCH_LOG_FILTER:-warn}
export SREWORKS_APPMETA__ENCRYPTION_KEY=${SREWORKS_APPMETA__ENCRYPTION_KEY:-$(head -c32 /dev/urandom | base64)}
ADMIN_PW="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
export SREWORKS_ADMIN_PASSWORD=$ADMIN_PW
export SREWORKS_PACKAGE_STORE__MAX_PACKAGE_BYTES=$((5 * 1024 * 1024 * 1024))
export SREWORKS_PACKAGE_STORE__MAX_UNCOMPRESSED_BYTES=$((12 * 1024 * 1024 * 1024))

pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  python3 - "$run_id" <<'PY' || true
import os, subprocess, sys, urllib.parse
u = urllib.parse.urlparse(os.environ.get("SREWORKS_DATABASE__URL", "mysql://root@127.0.0.1:3306"))
args = ["mariadb", "-h", u.hostname or "127.0.0.1", "-P", str(u.port or 3306), "-u", urllib.parse.unquote(u.username or "root"), "-N"]
env = dict(os.environ, MYSQL_PWD=urllib.parse.unquote(u.password or ""))
dbs = subprocess.run(args + ["-e", f"SHOW DATABASES LIKE '{sys.argv[1]}\\_%'"], capture_output=True, text=True, env=env).stdout.split()
for db in dbs:
    subprocess.run(args + ["-e", f"DROP DATABASE `{db}`"], env=env)
PY
}
trap cleanup EXIT

"$BIN/sreworks" migrate >/dev/null 2>&1 || die "migrate failed"
"$BIN/sreworks" serve --target package-store >/tmp/sw-pkgbench-store.log 2>&1 &
ps_pid=$!; pids+=("$ps_pid")
"$BIN/sreworks" serve --target gateway,auth >/tmp/sw-pkgbench-gw.log 2>&1 &
pids+=("$!")
ready=""
for _ in $(seq 1 500); do
  if curl -fs "http://127.0.0.1:$GW_PORT/readyz" >/dev/null 2>&1; then ready=1; break; fi
  sleep 0.02
done
[ -n "$ready" ] || { tail -20 /tmp/sw-pkgbench-gw.log /tmp/sw-pkgbench-store.log; die "sreworks did not become ready"; }
sleep 1

token=$(curl -fs -X POST "http://127.0.0.1:$GW_PORT/oauth/token" \
  -d grant_type=password -d username=admin --data-urlencode "password=$ADMIN_PW" -d client_id=swcli |
  python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])') || die "login failed"

echo "package-store pid $ps_pid, idle RSS $(awk '/VmRSS/ {print $2}' "/proc/$ps_pid/status") kB"
SW_BENCH_GATEWAY="http://127.0.0.1:$GW_PORT" SW_BENCH_TOKEN=$token SW_BENCH_PS_PID=$ps_pid \
  SW_BENCH_SIZES=$SIZES SW_BENCH_BUCKET="${run_id}-raw" "$BIN/package-bench"
echo
echo "($(nproc) cores; S3 server: $SREWORKS_S3__ENDPOINT; goal: >= 80 % of raw S3, RSS growth < 64 MiB)"
