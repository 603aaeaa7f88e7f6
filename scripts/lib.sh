# shellcheck shell=bash
# shellcheck disable=SC2034  # variables used by the scripts that source this file
# Shared helpers of the scripts in this folder: paths, loud errors, deadlines, package installs and
# the project-local secrets file. Sourced, never run.

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
SCRIPTS="$ROOT/scripts"
LOCAL="$ROOT/.local"   # git-ignored: data, logs, pid files and secrets of this checkout
RUN="$LOCAL/run"
SECRETS="$LOCAL/secrets.env"
INFRA_ENV="$RUN/infra.env"

# Builds persist across clean checkouts (CI runs in a fresh clone on the same machine).
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/sreworks/target}"
case "$CARGO_TARGET_DIR" in /*) ;; *) CARGO_TARGET_DIR="$ROOT/$CARGO_TARGET_DIR" ;; esac

# Colour only on a terminal; CI logs get plain text.
if [[ -t 2 ]]; then B=$'\033[1m' Y=$'\033[33m' R=$'\033[31m' N=$'\033[0m'; else B='' Y='' R='' N=''; fi
log() { printf '%s==>%s %s\n' "$B" "$N" "$*" >&2; }
warn() { printf '%swarning:%s %s\n' "$Y" "$N" "$*" >&2; }
die() {
  printf '%serror:%s %s\n' "$R" "$N" "$*" >&2
  exit 1
}

# Prints the last lines of a log file to stderr, framed, so a failure shows its cause.
log_tail() {
  local file=$1
  if [[ -s $file ]]; then
    printf -- '--- last lines of %s ---\n' "$file" >&2
    tail -n 30 "$file" >&2
    printf -- '---\n' >&2
  fi
}

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
  timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True while process $1 runs and its executable is named $2 (guards against a recycled pid).
pid_is() {
  local pid=$1 name=$2 comm
  [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [[ $comm == "$name"* ]]
}

# wait_port NAME PORT PID LOG SECONDS: waits until PORT accepts connections; fails loudly, with the
# log's tail, when the process exits first or the deadline passes. PID may be empty (daemonised).
wait_port() {
  local name=$1 port=$2 pid=$3 logfile=$4 secs=$5
  local deadline=$((SECONDS + secs))
  until port_open "$port"; do
    if [[ -n $pid ]] && ! kill -0 "$pid" 2>/dev/null; then
      log_tail "$logfile"
      die "$name exited before listening on 127.0.0.1:$port (log: $logfile)"
    fi
    if ((SECONDS >= deadline)); then
      log_tail "$logfile"
      die "$name did not listen on 127.0.0.1:$port within ${secs}s (log: $logfile)"
    fi
    sleep 0.2
  done
}

# wait_file FILE SECONDS: waits until FILE exists and is non-empty (pid files of daemons).
wait_file() {
  local file=$1 deadline=$((SECONDS + $2))
  until [[ -s $1 ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 0.1
  done
}

# Runs a command as root: directly when we are root, else through sudo.
as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null; then
    sudo "$@"
  else
    die "this step needs root and sudo is missing: run as root: $*"
  fi
}

# apt_install PACKAGE...: installs Debian packages (apt-get update once per script run), output on
# stderr so callers may capture a path on stdout. The
# packages' own services stay stopped: we start our own servers on our own ports and data dirs.
APT_UPDATED=
apt_install() {
  command -v apt-get >/dev/null ||
    die "need $* but this system has no apt-get: install $* yourself, then re-run"
  if [[ -z $APT_UPDATED ]]; then
    log "apt-get update"
    as_root env DEBIAN_FRONTEND=noninteractive timeout 600 apt-get update -qq >&2 ||
      die "apt-get update failed (see above)"
    APT_UPDATED=1
  fi
  log "apt-get install $*"
  # policy-rc.d exit 101 = "do not start services" (Debian's documented hook for this).
  local policy=/usr/sbin/policy-rc.d added=
  if [[ ! -e $policy ]]; then
    as_root sh -c "printf '#!/bin/sh\nexit 101\n' > $policy && chmod 755 $policy"
    added=1
  fi
  local rc=0
  as_root env DEBIAN_FRONTEND=noninteractive timeout 900 \
    apt-get install -y -qq --no-install-recommends "$@" >&2 || rc=$?
  [[ -z $added ]] || as_root rm -f "$policy"
  ((rc == 0)) || die "apt-get install $* failed (exit $rc, see above)"
}

# Finds an executable on PATH or in the sbin folders (not on a normal user's PATH).
find_exe() {
  local name dir
  for name in "$@"; do
    if command -v "$name" >/dev/null; then
      command -v "$name"
      return 0
    fi
    for dir in /usr/sbin /usr/local/sbin /sbin; do
      [[ -x $dir/$name ]] && { echo "$dir/$name"; return 0; }
    done
  done
  return 1
}

# 32 random bytes in base64.
random_b64_32() {
  if command -v openssl >/dev/null; then
    openssl rand -base64 32
  else
    python3 -c 'import base64, secrets; print(base64.b64encode(secrets.token_bytes(32)).decode())'
  fi
}

# 24 random hex characters: URL-safe, so it can sit in a mysql:// URL unescaped.
random_hex() {
  if command -v openssl >/dev/null; then
    openssl rand -hex 12
  else
    python3 -c 'import secrets; print(secrets.token_hex(12))'
  fi
}

# secret_get KEY: prints KEY's value from .local/secrets.env, or fails when it is not there.
secret_get() {
  [[ -f $SECRETS ]] || return 1
  local line
  line=$(grep -E "^$1=" "$SECRETS" | tail -n 1) || return 1
  printf '%s\n' "${line#*=}"
}

# secret_set KEY VALUE: appends KEY=VALUE to .local/secrets.env (mode 600).
secret_set() {
  mkdir -p "$LOCAL"
  (
    umask 077
    touch "$SECRETS"
  )
  chmod 600 "$SECRETS"
  printf '%s=%s\n' "$1" "$2" >>"$SECRETS"
}

# Exports the addresses infra.sh chose (alternate ports, the MariaDB user it created).
load_infra_env() {
  [[ -f $INFRA_ENV ]] || die "$INFRA_ENV is missing: run scripts/infra.sh ensure first"
  # shellcheck source=/dev/null
  source "$INFRA_ENV"
}

# Makes sure cargo is callable (rustup installs it under ~/.cargo/bin, not always on PATH).
require_cargo() {
  if ! command -v cargo >/dev/null && [[ -x $HOME/.cargo/bin/cargo ]]; then
    export PATH="$HOME/.cargo/bin:$PATH"
  fi
  command -v cargo >/dev/null ||
    die "cargo is missing: install the Rust toolchain (rustup) and re-run"
}

# mysql_client URL: sets MYSQL_CMD (an array) to a mariadb/mysql client for a mysql:// URL, with the
# password in MYSQL_PWD so it stays out of `ps`. Installs the client when missing.
MYSQL_CMD=()
mysql_client() {
  local url=$1 re='^mysql://([^:@/]+)(:([^@/]*))?@([^:/?]+)(:([0-9]+))?(/.*)?$'
  [[ $url =~ $re ]] || die "cannot read the database URL '${url%%@*}@…' (expected mysql://user[:password]@host[:port])"
  local user=${BASH_REMATCH[1]} pass=${BASH_REMATCH[3]} host=${BASH_REMATCH[4]} port=${BASH_REMATCH[6]:-3306}
  local exe
  exe=$(find_exe mariadb mysql) || {
    apt_install mariadb-client
    exe=$(find_exe mariadb mysql) || die "no mariadb client after installing mariadb-client"
  }
  # URL percent-escapes (%40 → @) back to bytes.
  export MYSQL_PWD
  MYSQL_PWD=$(printf '%b' "${pass//%/\\x}")
  MYSQL_CMD=("$exe" --protocol=TCP -h "$host" -P "$port" -u "$user" --connect-timeout=5 --batch --skip-column-names)
}
