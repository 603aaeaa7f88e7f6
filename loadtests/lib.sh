# Shared set-up of the benchmark scripts (sourced, not run): infrastructure, an isolated run id,
# release binaries, clean-up of what the run created, readiness and login.
#
#   bench_init NAME            dies with "NAME: ..." messages; ensures infra, loads its env, builds
#                              the release binaries, exports SREWORKS_* for an isolated run
#                              ($run_id, $ADMIN_PW, $BIN)
# BENCH_BIN=DIR runs the `sreworks` and bench binaries already in DIR instead of building: to
# compare two builds run after run on the same machine (copy each build's target/release/sreworks
# and target/release/<bench> to its own directory, then alternate), since this VM's speed drifts
# by ~30 % over an hour and runs far apart do not compare.
#   bench_wait_ready PORT LOG.. waits for /readyz (10 s), printing the logs on failure
#   bench_token PORT            prints an admin access token
# Processes whose pids are added to the `pids` array are stopped on exit, and the run's
# databases dropped.

export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$HOME/.cache/sreworks/target}
BENCH_NAME=bench
pids=()

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }

bench_init() {
  BENCH_NAME=$1
  scripts/infra.sh ensure
  local f
  for f in .local/secrets.env .local/run/infra.env; do
    if [ -f "$f" ]; then set -a; . "$f"; set +a; fi
  done
  if [ -n "${BENCH_BIN:-}" ]; then
    BIN=$BENCH_BIN
    [ -x "$BIN/sreworks" ] || die "BENCH_BIN=$BIN has no sreworks binary"
    echo "using the binaries in $BIN (not building)"
  else
    echo "building release binaries..."
    cargo build --release -q -p sreworks -p sw-loadtests
    BIN=$CARGO_TARGET_DIR/release
  fi
  run_id="b$(od -An -N5 -tx1 /dev/urandom | tr -d ' \n')"
  export SREWORKS_NATS__PREFIX=$run_id
  export SREWORKS_DATABASE__NAME_PREFIX="${run_id}_"
  export SREWORKS_REDIS__PREFIX=$run_id
  export SREWORKS_S3__BUCKET="${run_id}-packages"
  export SREWORKS_GATEWAY__RATE_LIMIT_PER_MINUTE=1000000000
  export SREWORKS_LOG__FILTER=${BENCH_LOG_FILTER:-warn}
  export SREWORKS_APPMETA__ENCRYPTION_KEY=${SREWORKS_APPMETA__ENCRYPTION_KEY:-$(head -c32 /dev/urandom | base64)}
  ADMIN_PW="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
  export SREWORKS_ADMIN_PASSWORD=$ADMIN_PW
  trap bench_cleanup EXIT
  "$BIN/sreworks" migrate >/dev/null 2>&1 || die "migrate failed"
}

bench_cleanup() {
  local p
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  # Drop the run's databases (same server and credentials as the platform).
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

bench_wait_ready() {
  local port=$1; shift
  local _
  for _ in $(seq 1 500); do
    if curl -fs "http://127.0.0.1:$port/readyz" >/dev/null 2>&1; then return 0; fi
    sleep 0.02
  done
  tail -20 "$@"
  die "sreworks did not become ready"
}

bench_token() {
  curl -fs -X POST "http://127.0.0.1:$1/oauth/token" \
    -d grant_type=password -d username=admin --data-urlencode "password=$ADMIN_PW" -d client_id=swcli |
    python3 -c 'import json,sys; print(json.load(sys.stdin)["access_token"])' || die "login failed"
}

# Starts the Kubernetes API emulator (tests/k8s-emulator) on a free port, logging to
# $1/emulator.log; sets emu_pid and port, and registers the process for bench_cleanup.
bench_start_emulator() {
  local dir=$1 py deadline
  py=$(tests/k8s-emulator/setup.sh)
  "$py" tests/k8s-emulator/emulator.py 0 >"$dir/port" 2>"$dir/emulator.log" &
  emu_pid=$!
  pids+=("$emu_pid")
  deadline=$((SECONDS + 20))
  until [[ $(head -n 1 "$dir/port" 2>/dev/null) =~ ^[0-9]+$ ]]; do
    kill -0 "$emu_pid" 2>/dev/null || { tail -20 "$dir/emulator.log"; die "the emulator exited before printing its port"; }
    ((SECONDS < deadline)) || { tail -20 "$dir/emulator.log"; die "the emulator printed no port within 20s"; }
    sleep 0.1
  done
  port=$(head -n 1 "$dir/port")
}
